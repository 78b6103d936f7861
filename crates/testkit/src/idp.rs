//! A real identity provider for tests: key pairs generated at run time (RS256, ES256, EdDSA),
//! their public JWKS served over HTTP on `127.0.0.1:0`, and JWTs minted with them. Tokens are
//! signed with aws-lc-rs directly, independently of the `jsonwebtoken` crate the verifier uses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use alter_core::identity::{ClaimMapping, IdentityProvider, JwksSource, JwtAlgorithm};
use alter_core::ids::{AppId, IdpId};
use alter_core::ports::Clock;
use alter_core::time::SystemClock;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A signing key pair with its `kid`.
#[derive(Clone)]
pub struct TestKey {
    kid: String,
    alg: JwtAlgorithm,
    pair: Arc<Pair>,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// A new key pair for `alg` (RSA keys are 2048-bit) with a random kid.
    pub fn generate(alg: JwtAlgorithm) -> TestKey {
        let pair = match alg {
            JwtAlgorithm::RS256 => Pair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA")),
            JwtAlgorithm::ES256 => {
                Pair::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256"))
            }
            JwtAlgorithm::EdDSA => Pair::Ed(Ed25519KeyPair::generate().expect("Ed25519")),
        };
        TestKey {
            kid: format!(
                "{}-{}",
                alg.as_str().to_ascii_lowercase(),
                uuid::Uuid::new_v4().simple()
            ),
            alg,
            pair: Arc::new(pair),
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> JwtAlgorithm {
        self.alg
    }

    /// The public key as a JWK with `kid`, `use: sig` and `alg`.
    pub fn public_jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let mut jwk = match &*self.pair {
            Pair::Rsa(pair) => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)})
            }
            Pair::Ec(pair) => {
                // An uncompressed point: 0x04, then x and y of 32 bytes each.
                let point = pair.public_key().as_ref();
                assert_eq!((point.len(), point[0]), (65, 4), "uncompressed P-256 point");
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Pair::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg.as_str());
        jwk
    }

    /// A JWT of `claims` with the header `{alg, typ: JWT, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid});
        self.sign_with_header(&header, claims)
    }

    /// A JWT of `claims` with exactly `header`, signed with this key's algorithm whatever the
    /// header says (for tokens that lie about their algorithm or lack a kid).
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = match &*self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut signature,
                )
                .expect("RSA signature");
                signature
            }
            Pair::Ec(pair) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// `base64url(header).base64url(claims)`.
fn signing_input(header: &Value, claims: &Value) -> String {
    let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!("{}.{}", part(header), part(claims))
}

/// A token with `alg: none` and an empty signature: must never verify.
pub fn unsigned_token(claims: &Value) -> String {
    format!(
        "{}.",
        signing_input(&json!({"alg": "none", "typ": "JWT"}), claims)
    )
}

/// An HS256 token with `secret` (e.g. a public key, the classic algorithm-confusion attack):
/// must never verify.
pub fn hs256_token(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    use aws_lc_rs::hmac;
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    let input = signing_input(&header, claims);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// A running identity provider. Stops when dropped.
#[derive(Debug)]
pub struct TestIdp {
    shared: Arc<Shared>,
    base_url: String,
    issuer: String,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct Shared {
    /// Published keys; the first one signs [`TestIdp::token`]s.
    keys: Mutex<Vec<TestKey>>,
    /// Served instead of the JWKS when set: status and body.
    response: Mutex<Option<(u16, String)>>,
    jwks_requests: AtomicUsize,
}

impl Shared {
    fn keys(&self) -> MutexGuard<'_, Vec<TestKey>> {
        self.keys.lock().expect("keys lock")
    }

    fn jwks_json(&self) -> String {
        let keys: Vec<Value> = self.keys().iter().map(TestKey::public_jwk).collect();
        json!({ "keys": keys }).to_string()
    }
}

/// The audience of minted tokens.
const AUDIENCE: &str = "alter-test";

impl TestIdp {
    /// An IdP with one ES256 key.
    pub async fn start() -> TestIdp {
        Self::start_with(&[JwtAlgorithm::ES256]).await
    }

    /// An IdP publishing one key per algorithm of `algorithms`; the first one signs
    /// [`TestIdp::token`]s.
    pub async fn start_with(algorithms: &[JwtAlgorithm]) -> TestIdp {
        assert!(!algorithms.is_empty(), "an IdP needs a key");
        let shared = Arc::new(Shared {
            keys: Mutex::new(algorithms.iter().copied().map(TestKey::generate).collect()),
            response: Mutex::new(None),
            jwks_requests: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [(LOCATION, "/jwks")]) }),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the IdP");
        let base_url = format!("http://{}", listener.local_addr().expect("IdP address"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        TestIdp {
            shared,
            issuer: base_url.clone(),
            base_url,
            stop: Some(stop),
        }
    }

    /// The `iss` of minted tokens (the IdP's base URL).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of minted tokens.
    pub fn audience(&self) -> &str {
        AUDIENCE
    }

    /// Where the JWKS is served.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base_url)
    }

    /// A URL that redirects to [`TestIdp::jwks_url`]: a client that follows redirects gets keys.
    pub fn redirecting_url(&self) -> String {
        format!("{}/moved", self.base_url)
    }

    /// The public JWKS, for inline configuration.
    pub fn jwks_json(&self) -> String {
        self.shared.jwks_json()
    }

    /// How many times the JWKS was requested.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// Serves `status` and `body` instead of the JWKS, or the JWKS again with `None`.
    pub fn set_jwks_response(&self, response: Option<(u16, String)>) {
        *self.shared.response.lock().expect("response lock") = response;
    }

    /// The key that signs [`TestIdp::token`]s.
    pub fn key(&self) -> TestKey {
        self.shared.keys()[0].clone()
    }

    /// Every published key.
    pub fn keys(&self) -> Vec<TestKey> {
        self.shared.keys().clone()
    }

    /// Replaces the signing key with a new one of the same algorithm (new kid); the old key
    /// leaves the JWKS. Returns the new key.
    pub fn rotate(&self) -> TestKey {
        let mut keys = self.shared.keys();
        keys[0] = TestKey::generate(keys[0].alg);
        keys[0].clone()
    }

    /// This IdP as an app's identity provider: JWKS by URL, its keys' algorithms, default claim
    /// mapping, no leeway.
    pub fn identity_provider(&self) -> IdentityProvider {
        let now = SystemClock.now();
        let mut algorithms = Vec::new();
        for key in self.shared.keys().iter() {
            if !algorithms.contains(&key.alg) {
                algorithms.push(key.alg);
            }
        }
        IdentityProvider {
            id: IdpId::new(),
            app_id: AppId::new(),
            issuer: self.issuer.clone(),
            audiences: vec![AUDIENCE.into()],
            jwks: JwksSource::Url(self.jwks_url()),
            algorithms,
            claims: ClaimMapping::default(),
            leeway_seconds: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// The claims of a token for `subject`: `iss`, `aud`, `sub`, `iat` now and `exp` an hour
    /// ahead (system clock), then `extra`'s members on top; a `null` member removes the claim.
    pub fn claims(&self, subject: &str, extra: Value) -> Value {
        let now = SystemClock.now().unix_seconds();
        let mut claims = json!({
            "iss": self.issuer, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + 3600,
        });
        if let Value::Object(extra) = extra {
            for (name, value) in extra {
                if value.is_null() {
                    claims.as_object_mut().expect("object").remove(&name);
                } else {
                    claims[name] = value;
                }
            }
        }
        claims
    }

    /// A valid token for `subject` with `extra` claims (see [`TestIdp::claims`]).
    pub fn token(&self, subject: &str, extra: Value) -> String {
        self.key().sign(&self.claims(subject, extra))
    }

    /// A token that expired an hour ago.
    pub fn expired_token(&self, subject: &str) -> String {
        let now = SystemClock.now().unix_seconds();
        self.token(subject, json!({"iat": now - 7200, "exp": now - 3600}))
    }

    /// A token for another audience.
    pub fn wrong_audience_token(&self, subject: &str) -> String {
        self.token(subject, json!({"aud": "someone-else"}))
    }
}

async fn serve_jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let json = [(CONTENT_TYPE, "application/json")];
    match shared.response.lock().expect("response lock").clone() {
        Some((status, body)) => {
            let status = StatusCode::from_u16(status).expect("HTTP status");
            (status, json, body).into_response()
        }
        None => (json, shared.jwks_json()).into_response(),
    }
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_its_keys_and_rotates() {
        let idp = TestIdp::start_with(&[JwtAlgorithm::ES256, JwtAlgorithm::RS256]).await;
        let served: Value = reqwest::get(idp.jwks_url())
            .await
            .expect("JWKS served")
            .json()
            .await
            .expect("JSON");
        assert_eq!(served.to_string(), idp.jwks_json());
        assert_eq!(idp.jwks_requests(), 1);
        let ec = &served["keys"][0];
        assert_eq!(
            (ec["kty"].as_str(), ec["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        // 32-byte coordinates are 43 base64url characters.
        assert_eq!(ec["x"].as_str().map(str::len), Some(43));
        assert_eq!(ec["y"].as_str().map(str::len), Some(43));
        assert_eq!(served["keys"][1]["e"], "AQAB");

        let old = idp.key();
        let new = idp.rotate();
        assert_ne!(old.kid(), new.kid());
        assert_eq!(new.alg(), JwtAlgorithm::ES256);
        let kids: Vec<String> = idp.keys().iter().map(|k| k.kid().to_owned()).collect();
        assert!(kids.contains(&new.kid().to_owned()) && !kids.contains(&old.kid().to_owned()));
        assert_eq!(kids.len(), 2);
    }

    #[test]
    fn claims_defaults_and_overrides() {
        let idp = TestIdp {
            shared: Arc::new(Shared {
                keys: Mutex::new(vec![TestKey::generate(JwtAlgorithm::EdDSA)]),
                response: Mutex::new(None),
                jwks_requests: AtomicUsize::new(0),
            }),
            base_url: "http://127.0.0.1:1".into(),
            issuer: "https://issuer.test".into(),
            stop: None,
        };
        let claims = idp.claims("ada", json!({"aud": "other", "exp": null, "groups": ["g"]}));
        assert_eq!(claims["iss"], "https://issuer.test");
        assert_eq!(claims["sub"], "ada");
        assert_eq!(claims["aud"], "other");
        assert_eq!(claims["groups"], json!(["g"]));
        assert!(claims.get("exp").is_none());
        let token = idp.token("ada", json!({}));
        assert_eq!(token.split('.').count(), 3);
        assert!(unsigned_token(&claims).ends_with('.'));
    }
}
