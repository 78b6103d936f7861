//! `JwtVerifier` against a real identity provider: keys generated at run time, the JWKS served
//! over HTTP on 127.0.0.1, cache ages moved with the injected `now` instead of sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alter_core::identity::{
    ClaimMapping, IdentityProvider, JwksSource, JwtAlgorithm, TokenError, VerifiedToken,
};
use alter_core::ports::{Clock, TokenVerifier};
use alter_core::time::{SystemClock, Timestamp};
use alter_testkit::idp::{TestIdp, TestKey, hs256_token, unsigned_token};
use alter_upstream::JwtVerifier;
use alter_upstream::jwks::{CACHE_TTL_SECONDS, MIN_REFETCH_INTERVAL_SECONDS};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn verifier() -> JwtVerifier {
    JwtVerifier::new().expect("verifier")
}

async fn invalid(
    verifier: &JwtVerifier,
    idp: &IdentityProvider,
    token: &str,
    now: Timestamp,
) -> String {
    match verifier.verify(idp, token, now).await {
        Err(TokenError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

async fn unavailable(verifier: &JwtVerifier, idp: &IdentityProvider, token: &str) -> String {
    match verifier.verify(idp, token, SystemClock.now()).await {
        Err(TokenError::KeysUnavailable(reason)) => reason,
        other => panic!("expected KeysUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn valid_tokens_of_every_algorithm_pass_with_mapped_claims() {
    let idp = TestIdp::start_with(&[
        JwtAlgorithm::RS256,
        JwtAlgorithm::ES256,
        JwtAlgorithm::EdDSA,
    ])
    .await;
    let provider = IdentityProvider {
        claims: ClaimMapping {
            groups: Some("https://example.com/groups".into()),
            name: Some("profile.display_name".into()),
            ..ClaimMapping::default()
        },
        ..idp.identity_provider()
    };
    assert_eq!(provider.algorithms.len(), 3);
    let verifier = verifier();
    let now = SystemClock.now();
    for key in idp.keys() {
        let claims = idp.claims(
            "user-1",
            json!({
                "aud": ["other-api", idp.audience()],
                "email": "ada@example.com",
                "profile": {"display_name": "Ada"},
                "https://example.com/groups": ["admins", "staff"],
                "nbf": now.unix_seconds(),
                // Issued at the verification time: the clock may tick between the two reads.
                "iat": now.unix_seconds(),
            }),
        );
        let verified = verifier
            .verify(&provider, &key.sign(&claims), now)
            .await
            .unwrap_or_else(|e| panic!("{:?} token: {e}", key.alg()));
        assert_eq!(
            verified,
            VerifiedToken {
                subject: "user-1".into(),
                groups: vec!["admins".into(), "staff".into()],
                email: Some("ada@example.com".into()),
                name: Some("Ada".into()),
                expires_at: Timestamp::from_unix_seconds(claims["exp"].as_i64().unwrap()),
                issued_at: Some(Timestamp::from_unix_seconds(
                    claims["iat"].as_i64().unwrap()
                )),
            }
        );
    }
    // One fetch served all three keys.
    assert_eq!(idp.jwks_requests(), 1);

    // Keycloak-style nested roles, and a single group given as a string.
    let nested = IdentityProvider {
        claims: ClaimMapping {
            groups: Some("realm_access.roles".into()),
            ..ClaimMapping::default()
        },
        ..provider.clone()
    };
    let token = idp.token("user-2", json!({"realm_access": {"roles": "readers"}}));
    let verified = verifier.verify(&nested, &token, now).await.unwrap();
    assert_eq!(
        (verified.subject.as_str(), verified.groups, verified.email),
        ("user-2", vec!["readers".to_owned()], None)
    );
}

#[tokio::test]
async fn bad_tokens_are_invalid_with_a_reason() {
    let idp = TestIdp::start().await;
    let provider = IdentityProvider {
        leeway_seconds: 60,
        ..idp.identity_provider()
    };
    let verifier = verifier();
    let now = SystemClock.now();
    let at = |offset: i64| now.unix_seconds() + offset;
    let check = async |token: String| invalid(&verifier, &provider, &token, now).await;

    assert_eq!(
        check(idp.token("u", json!({"iss": "https://evil.example.com"}))).await,
        "wrong issuer"
    );
    assert_eq!(check(idp.wrong_audience_token("u")).await, "wrong audience");
    assert_eq!(check(idp.expired_token("u")).await, "expired");
    assert_eq!(
        check(idp.token("u", json!({"exp": at(-61)}))).await,
        "expired"
    );
    // Within the leeway both ways.
    let skewed = idp.token("u", json!({"exp": at(-59), "nbf": at(59)}));
    assert!(verifier.verify(&provider, &skewed, now).await.is_ok());
    assert_eq!(
        check(idp.token("u", json!({"nbf": at(120)}))).await,
        "not yet valid"
    );
    assert_eq!(
        check(idp.token("u", json!({"exp": null}))).await,
        "missing exp"
    );
    assert_eq!(check(idp.token("", json!({}))).await, "missing subject");

    // Tampered payload: the claims change, the signature stays.
    let token = idp.token("alice", json!({}));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(idp.claims("mallory", json!({})).to_string());
    let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert_eq!(check(tampered).await, "bad signature");

    // Signed by a key the IdP never published, under the IdP's kid.
    let stranger = TestKey::generate(JwtAlgorithm::ES256);
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": idp.key().kid()});
    assert_eq!(
        check(stranger.sign_with_header(&header, &idp.claims("u", json!({})))).await,
        "bad signature"
    );

    // Algorithms the IdP does not accept, including none and HMAC with the public key as the
    // secret (algorithm confusion).
    let rs_only = IdentityProvider {
        algorithms: vec![JwtAlgorithm::RS256],
        ..provider.clone()
    };
    assert_eq!(
        invalid(&verifier, &rs_only, &idp.token("u", json!({})), now).await,
        "algorithm not allowed"
    );
    let claims = idp.claims("u", json!({}));
    assert_eq!(
        check(unsigned_token(&claims)).await,
        "algorithm not allowed"
    );
    let public_jwk = idp.key().public_jwk().to_string();
    assert_eq!(
        check(hs256_token(
            public_jwk.as_bytes(),
            Some(idp.key().kid()),
            &claims
        ))
        .await,
        "algorithm not allowed"
    );
    // A header that lies about the algorithm of the key its kid names.
    let eddsa_provider = IdentityProvider {
        algorithms: vec![JwtAlgorithm::ES256, JwtAlgorithm::EdDSA],
        ..provider.clone()
    };
    let lying = json!({"alg": "EdDSA", "typ": "JWT", "kid": idp.key().kid()});
    assert_eq!(
        invalid(
            &verifier,
            &eddsa_provider,
            &idp.key().sign_with_header(&lying, &claims),
            now
        )
        .await,
        "key does not match the token's algorithm"
    );
    assert_eq!(check("not.a-token".into()).await, "malformed token");
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_every_ten_seconds() {
    let idp = TestIdp::start().await;
    let provider = idp.identity_provider();
    let verifier = verifier();
    // Issued before it is first verified: the clock may tick between the two reads.
    let before_rotation = idp.token("u", json!({}));
    let t0 = SystemClock.now();
    let at = |seconds: i64| t0.plus_seconds(seconds);

    verifier
        .verify(&provider, &before_rotation, t0)
        .await
        .unwrap();
    verifier
        .verify(&provider, &before_rotation, at(100))
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), 1, "the set is cached");

    // Key rotation at the IdP: the new kid is unknown, so the set is fetched again.
    idp.rotate();
    let after_rotation = idp.token("u", json!({}));
    verifier
        .verify(&provider, &after_rotation, at(200))
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), 2);
    assert_eq!(
        invalid(&verifier, &provider, &before_rotation, at(201)).await,
        "unknown kid"
    );

    // A flood of made-up kids within ten seconds of the last fetch fetches nothing.
    for second in 202..=209 {
        let made_up = TestKey::generate(JwtAlgorithm::ES256).sign(&idp.claims("u", json!({})));
        assert_eq!(
            invalid(&verifier, &provider, &made_up, at(second)).await,
            "unknown kid"
        );
    }
    assert_eq!(idp.jwks_requests(), 2);
    let later = at(200 + MIN_REFETCH_INTERVAL_SECONDS);
    let made_up = TestKey::generate(JwtAlgorithm::ES256).sign(&idp.claims("u", json!({})));
    assert_eq!(
        invalid(&verifier, &provider, &made_up, later).await,
        "unknown kid"
    );
    assert_eq!(idp.jwks_requests(), 3, "one refetch after the interval");
    verifier
        .verify(&provider, &after_rotation, later)
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), 3);
}

#[tokio::test]
async fn the_cache_expires_after_five_minutes() {
    let idp = TestIdp::start().await;
    let provider = idp.identity_provider();
    let verifier = verifier();
    let token = idp.token("u", json!({}));
    let t0 = SystemClock.now();
    verifier.verify(&provider, &token, t0).await.unwrap();
    verifier
        .verify(&provider, &token, t0.plus_seconds(CACHE_TTL_SECONDS - 1))
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), 1);
    verifier
        .verify(&provider, &token, t0.plus_seconds(CACHE_TTL_SECONDS))
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), 2);
}

#[tokio::test]
async fn unreachable_or_broken_jwks_is_keys_unavailable() {
    let idp = TestIdp::start().await;
    let token = idp.token("u", json!({}));
    let verifier = verifier();

    // Nothing listens on a port just released.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/jwks", listener.local_addr().unwrap());
    drop(listener);
    let unreachable = IdentityProvider {
        jwks: JwksSource::Url(closed),
        ..idp.identity_provider()
    };
    assert_eq!(
        unavailable(&verifier, &unreachable, &token).await,
        "fetching JWKS: connection failed"
    );

    // Redirects are not followed, even to the right keys.
    let redirecting = IdentityProvider {
        jwks: JwksSource::Url(idp.redirecting_url()),
        ..idp.identity_provider()
    };
    assert_eq!(
        unavailable(&verifier, &redirecting, &token).await,
        "fetching JWKS: HTTP 302"
    );
    assert_eq!(idp.jwks_requests(), 0);

    // Errors, junk and oversized documents, each on a fresh verifier (no cache).
    let provider = idp.identity_provider();
    for (status, body, reason) in [
        (500, "oops".to_owned(), "fetching JWKS: HTTP 500"),
        (200, "<html>".to_owned(), "not a JWKS document"),
        (
            200,
            format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(300 * 1024)),
            "fetching JWKS: response larger than 262144 bytes",
        ),
    ] {
        idp.set_jwks_response(Some((status, body)));
        assert_eq!(
            unavailable(&JwtVerifier::new().unwrap(), &provider, &token).await,
            reason
        );
    }

    // A failed fetch is not retried for ten seconds, then the IdP is asked again.
    let requests = idp.jwks_requests();
    let t0 = SystemClock.now();
    assert!(matches!(
        verifier.verify(&provider, &token, t0).await,
        Err(TokenError::KeysUnavailable(_))
    ));
    idp.set_jwks_response(None);
    assert!(matches!(
        verifier.verify(&provider, &token, t0.plus_seconds(5)).await,
        Err(TokenError::KeysUnavailable(_))
    ));
    assert_eq!(idp.jwks_requests(), requests + 1);
    verifier
        .verify(
            &provider,
            &token,
            t0.plus_seconds(MIN_REFETCH_INTERVAL_SECONDS),
        )
        .await
        .unwrap();
    assert_eq!(idp.jwks_requests(), requests + 2);
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    let idp = TestIdp::start().await;
    let remote = IdentityProvider {
        jwks: JwksSource::Url("http://idp.example.com/.well-known/jwks.json".into()),
        ..idp.identity_provider()
    };
    assert_eq!(
        unavailable(&verifier(), &remote, &idp.token("u", json!({}))).await,
        "JWKS URL refused: must be https (plain http only to a loopback host)"
    );
}

#[tokio::test]
async fn inline_jwks_needs_no_fetch() {
    let idp = TestIdp::start_with(&[JwtAlgorithm::EdDSA]).await;
    let provider = IdentityProvider {
        jwks: JwksSource::Inline(idp.jwks_json()),
        ..idp.identity_provider()
    };
    let verifier = verifier();
    let now = SystemClock.now();
    // Issued at the verification time: the clock may tick between the two reads.
    let iat = json!({"iat": now.unix_seconds()});
    let verified = verifier
        .verify(&provider, &idp.token("inline-user", iat.clone()), now)
        .await
        .unwrap();
    assert_eq!(verified.subject, "inline-user");

    // Without a kid, the only key of the set is used.
    let no_kid = idp
        .key()
        .sign_with_header(&json!({"alg": "EdDSA"}), &idp.claims("u", iat.clone()));
    assert!(verifier.verify(&provider, &no_kid, now).await.is_ok());
    let made_up = TestKey::generate(JwtAlgorithm::EdDSA).sign(&idp.claims("u", iat));
    assert_eq!(
        invalid(&verifier, &provider, &made_up, now).await,
        "unknown kid"
    );
    assert_eq!(idp.jwks_requests(), 0);
}

#[test]
fn a_source_is_refused_when_set_if_it_could_never_be_used() {
    let verifier = verifier();
    let url = |u: &str| verifier.check_source(&JwksSource::Url(u.into()));
    assert!(url("https://idp.example.com/.well-known/jwks.json").is_ok());
    assert!(url("http://localhost:8080/jwks").is_ok());
    assert!(
        url("http://127.0.0.2/jwks").is_ok(),
        "all of 127/8 is loopback"
    );
    assert!(url("http://LOCALHOST/jwks").is_ok());
    for refused in [
        "http://localhost.evil.com/jwks",
        "http://localhost@evil.com/jwks",
        "http://idp.example.com/jwks",
        "ftp://idp.example.com/jwks",
        "not a url",
    ] {
        assert!(url(refused).is_err(), "{refused}");
    }

    let inline = |doc: &str| verifier.check_source(&JwksSource::Inline(doc.into()));
    let public = TestKey::generate(JwtAlgorithm::ES256).public_jwk();
    assert!(inline(&json!({"keys": [public]}).to_string()).is_ok());
    let mut private = public.clone();
    private["d"] = json!("c2VjcmV0");
    assert!(
        inline(&json!({"keys": [private]}).to_string())
            .unwrap_err()
            .contains("private key")
    );
    assert!(
        inline(r#"{"keys": [{"kty": "nope"}]}"#).is_err(),
        "no readable key"
    );
    assert!(inline(r#"{"keys": []}"#).is_err());
    assert!(inline("[]").is_err());
    let huge = format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(300 * 1024));
    assert!(inline(&huge).unwrap_err().contains("256 KiB"));
}
