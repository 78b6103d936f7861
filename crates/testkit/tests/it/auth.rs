//! Signed-request authentication (protocol part 1 §3): what is accepted, and that every
//! failure looks the same.

use alter_proto::admin::MintKeyRequest;
use alter_proto::signing::headers;
use alter_sdk::Error;
use alter_testkit::{Options, RawResponse, TestServer, on_every_engine};

fn assert_invalid_key(response: &RawResponse, what: &str) {
    assert_eq!(response.status, 401, "{what}: {:?}", response.json);
    assert_eq!(response.code(), Some("invalid_key"), "{what}");
    assert_eq!(
        response.json["message"], "invalid API key or signature",
        "{what}: every failure reads the same"
    );
}

#[tokio::test]
async fn correctly_signed_calls_succeed_with_and_without_identity() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let key = &app.key.api_key;
        assert_eq!(
            server.app(key).scopes().list().await.unwrap().scope_version,
            1
        );
        let with_caller = alter_sdk::App::builder(key.as_str())
            .base_url(server.base_url())
            .caller("billing-worker")
            .build_app()
            .unwrap();
        with_caller.scopes().list().await.unwrap();
        let ok = server
            .raw(key, "GET", "/sdk/scopes")
            .signed_header(headers::CALLER, "svc")
            .signed_header(headers::CALLER_TYPE, "service")
            .signed_header(headers::CONTEXT, r#"{"run_id":"r1","tool":"search"}"#)
            .send()
            .await;
        assert_eq!(ok.status, 200, "{:?}", ok.json);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn every_authentication_failure_answers_the_same_invalid_key() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let key = app.key.api_key.as_str();
        let now = server.now().unix_seconds();

        let unknown = "alter_rk_abcdefghijklmnopqrstuv_iwpykn";
        assert_invalid_key(
            &server.raw(unknown, "GET", "/sdk/scopes").send().await,
            "unknown key",
        );
        assert_invalid_key(
            &server.raw("not-a-key", "GET", "/sdk/scopes").send().await,
            "malformed key",
        );
        // The last checksum character changed (to one it is not already).
        let last = if key.ends_with('a') { 'b' } else { 'a' };
        let bad_checksum = format!("{}{last}", &key[..key.len() - 1]);
        assert_invalid_key(
            &server.raw(&bad_checksum, "GET", "/sdk/scopes").send().await,
            "checksum",
        );

        let body = br#"{"scopes":["keys:read"],"expires_in":60}"#;
        let tampered = server
            .raw(key, "POST", "/sdk/keys/derive")
            .body(body.to_vec())
            .tamper_body(br#"{"scopes":["keys:admin"],"expires_in":60}"#.to_vec())
            .send()
            .await;
        assert_invalid_key(&tampered, "tampered body");
        let forged_hash = server
            .raw(key, "GET", "/sdk/scopes")
            .header(headers::CONTENT_SHA256, &"0".repeat(64))
            .send()
            .await;
        assert_invalid_key(&forged_hash, "content hash mismatch");
        let wrong_signature = server
            .raw(key, "GET", "/sdk/scopes")
            .signature(&"ab".repeat(32))
            .send()
            .await;
        assert_invalid_key(&wrong_signature, "wrong signature");
        let other_key = server
            .raw(key, "GET", "/sdk/scopes")
            .signature("zz")
            .send()
            .await;
        assert_invalid_key(&other_key, "non-hex signature");

        let stale = server
            .raw(key, "GET", "/sdk/scopes")
            .timestamp(now - 301)
            .send()
            .await;
        assert_invalid_key(&stale, "stale timestamp");
        let future = server
            .raw(key, "GET", "/sdk/scopes")
            .timestamp(now + 301)
            .send()
            .await;
        assert_invalid_key(&future, "future timestamp");
        // Timestamps whose distance from now overflows an i64 are refused like any other.
        for extreme in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let far = server
                .raw(key, "GET", "/sdk/scopes")
                .timestamp(extreme)
                .send()
                .await;
            assert_invalid_key(&far, &format!("timestamp {extreme}"));
        }
        let edge = server
            .raw(key, "GET", "/sdk/scopes")
            .timestamp(now - 299)
            .send()
            .await;
        assert_eq!(edge.status, 200, "inside the window");

        let nonce = "0123456789abcdef0123456789abcdef";
        let first = server
            .raw(key, "GET", "/sdk/scopes")
            .nonce(nonce)
            .send()
            .await;
        assert_eq!(first.status, 200);
        let replay = server
            .raw(key, "GET", "/sdk/scopes")
            .nonce(nonce)
            .send()
            .await;
        assert_invalid_key(&replay, "replayed nonce");
        let short_nonce = server
            .raw(key, "GET", "/sdk/scopes")
            .nonce("abc")
            .send()
            .await;
        assert_invalid_key(&short_nonce, "malformed nonce");

        // An identity header bound by the signature cannot be stripped or changed.
        let signed_with_caller = server
            .raw(key, "GET", "/sdk/scopes")
            .signed_header(headers::CALLER, "svc")
            .header(headers::CALLER, "someone-else")
            .send()
            .await;
        assert_invalid_key(&signed_with_caller, "changed caller");
        let mismatched_v2 = server
            .raw(key, "GET", "/sdk/scopes")
            .header(headers::SIGNATURE_V2, &"cd".repeat(32))
            .send()
            .await;
        assert_invalid_key(&mismatched_v2, "v2 differs from v1");
        for missing in [
            headers::TIMESTAMP,
            headers::NONCE,
            headers::SIGNATURE,
            headers::CONTENT_SHA256,
        ] {
            let response = reqwest::Client::new()
                .get(format!("{}/sdk/scopes", server.base_url()))
                .header(headers::API_KEY, key)
                .header(missing, "x")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "only {missing}");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nonces_hold_across_server_nodes() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let node2 = server.second_node().await;
        let app = server.new_app("a").await;
        let key = app.key.api_key.as_str();
        let nonce = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            server
                .raw(key, "GET", "/sdk/scopes")
                .nonce(nonce)
                .send()
                .await
                .status,
            200
        );
        assert_invalid_key(
            &node2
                .raw(key, "GET", "/sdk/scopes")
                .nonce(nonce)
                .send()
                .await,
            "replay on another node",
        );
        node2.stop().await;
        server.stop().await;
    })
    .await;
}

/// Two nodes whose clocks are 45 s apart (within the 60 s of skew the nonce retention allows
/// for beyond twice the signing window): a request signed by a client between them is
/// accepted by either, once; and a node ahead pruning nonces never forgets one the node
/// behind would still accept a replay of.
#[tokio::test]
async fn nodes_with_clocks_apart_agree_on_replays() {
    const SKEW: i64 = 45;
    on_every_engine(|engine| async move {
        let behind = TestServer::start(engine).await;
        let ahead = behind.second_node_with_clock_ahead(SKEW).await;
        let app = behind.new_app("a").await;
        let key = app.key.api_key.as_str();
        let now = behind.now().unix_seconds();
        let send = |node: &TestServer, nonce: &str, timestamp: i64| {
            node.raw(key, "GET", "/sdk/scopes")
                .nonce(nonce)
                .timestamp(timestamp)
                .send()
        };
        for (first, second, nonce) in [
            (&behind, &ahead, "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"),
            (&ahead, &behind, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"),
        ] {
            assert_eq!(send(first, nonce, now + SKEW / 2).await.status, 200);
            assert_invalid_key(
                &send(second, nonce, now + SKEW / 2).await,
                "replay on a node whose clock differs",
            );
        }
        // The latest a replay could still be accepted: signed as far ahead as the node behind
        // allows, then replayed there just before the window closes — after the node ahead
        // pruned nonces at its own (later) time.
        let window = 300;
        let nonce = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c";
        assert_eq!(send(&behind, nonce, now + window).await.status, 200);
        behind.advance(2 * window - 1);
        ahead.advance(2 * window - 1);
        ahead.vault().prune_nonces().await.unwrap();
        assert_invalid_key(
            &send(&behind, nonce, now + window).await,
            "replay after the node ahead pruned",
        );
        ahead.stop().await;
        behind.stop().await;
    })
    .await;
}

#[tokio::test]
async fn key_lifecycle_is_reported_to_the_key_holder() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let short = server
            .mint_key(
                &app,
                MintKeyRequest {
                    expires_in: Some(60),
                    ..Default::default()
                },
            )
            .await;
        let client = server.app(&short.api_key);
        client.scopes().list().await.unwrap();
        server.advance(61);
        let expired = client.scopes().list().await.unwrap_err();
        assert!(matches!(expired, Error::KeyExpired(_)), "{expired}");

        let revoked = server.mint_key(&app, MintKeyRequest::default()).await;
        server
            .admin()
            .revoke_key(&app.info.id, &revoked.info.id)
            .await
            .unwrap();
        let e = server
            .app(&revoked.api_key)
            .scopes()
            .list()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::KeyRevoked(_)), "{e}");
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_rotated_key_works_through_its_overlap_then_stops() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let old = app.key.api_key.as_str();
        let successor = server
            .app(old)
            .keys()
            .rotate(&app.key.info.id, 1)
            .await
            .unwrap();
        assert_ne!(successor.api_key, old);
        assert_eq!(successor.info.scopes, app.key.info.scopes);
        let during = server.raw(old, "GET", "/sdk/scopes").send().await;
        assert_eq!(during.status, 200);
        assert_eq!(
            during
                .headers
                .get(headers::KEY_DEPRECATED)
                .map(|v| v.to_str().unwrap()),
            Some("true"),
            "a rotated key is deprecated"
        );
        let fresh = server
            .raw(&successor.api_key, "GET", "/sdk/scopes")
            .send()
            .await;
        assert_eq!(fresh.status, 200);
        assert!(fresh.headers.get(headers::KEY_DEPRECATED).is_none());

        server.advance(24 * 3600);
        let after = server.app(old).scopes().list().await.unwrap_err();
        assert!(matches!(after, Error::KeyRotationExpired(_)), "{after}");
        server
            .app(&successor.api_key)
            .scopes()
            .list()
            .await
            .unwrap();

        // Rotating twice, or with an overlap outside 0-30 days, is refused.
        let again = server
            .app(&successor.api_key)
            .keys()
            .rotate(&app.key.info.id, 0)
            .await;
        assert!(again.is_err());
        let bad = server
            .raw(
                &successor.api_key,
                "POST",
                &format!("/sdk/keys/{}/rotate", successor.info.id),
            )
            .body(br#"{"overlap_days":31}"#.to_vec())
            .send()
            .await;
        assert_eq!(bad.status, 422, "{:?}", bad.json);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn servers_mounted_under_a_prefix_verify_the_path_after_it() {
    on_every_engine(|engine| async move {
        let options = Options {
            base_path: "/api".into(),
            ..Options::default()
        };
        let server = TestServer::start_with(engine, options).await;
        assert!(server.base_url().ends_with("/api"));
        let app = server.new_app("a").await;
        let client = server.app(&app.key.api_key);
        client.scopes().list().await.unwrap();
        let derived = client
            .keys()
            .derive(alter_sdk::DeriveKeyRequest {
                scopes: vec!["keys:read".into()],
                expires_in: 60,
                cidr_allowlist: None,
                name: Some("spaced name".into()),
                metadata: None,
            })
            .await
            .unwrap();
        client.keys().revoke(&derived.info.id, false).await.unwrap();
        let unprefixed = reqwest::get(format!(
            "{}/sdk/scopes",
            server.base_url().trim_end_matches("/api")
        ))
        .await
        .unwrap();
        assert_eq!(unprefixed.status(), 404);
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    on_every_engine(|engine| async move {
        let server = TestServer::start_with(
            engine,
            Options {
                max_body_bytes: 4096,
                ..Options::default()
            },
        )
        .await;
        let app = server.new_app("a").await;
        let big = format!(
            r#"{{"scopes":["keys:read"],"expires_in":60,"name":"{}"}}"#,
            "x".repeat(5000)
        );
        let response = server
            .raw(&app.key.api_key, "POST", "/sdk/keys/derive")
            .body(big.into_bytes())
            .send()
            .await;
        assert_eq!(response.status, 413);
        assert_eq!(response.code(), Some("payload_too_large"));
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_cidr_allowlist_is_enforced_against_the_peer() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let elsewhere = server
            .mint_key(
                &app,
                MintKeyRequest {
                    cidr_allowlist: Some(vec!["10.0.0.0/8".into()]),
                    ..Default::default()
                },
            )
            .await;
        let e = server
            .app(&elsewhere.api_key)
            .scopes()
            .list()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::PolicyViolation(_)), "{e}");
        assert_eq!(e.code(), Some("ip_not_allowed"));
        let here = server
            .mint_key(
                &app,
                MintKeyRequest {
                    cidr_allowlist: Some(vec!["127.0.0.0/8".into(), "::1/128".into()]),
                    ..Default::default()
                },
            )
            .await;
        server.app(&here.api_key).scopes().list().await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ipv4_mapped_peers_match_ipv4_allowlists_and_the_reverse() {
    on_every_engine(|engine| async move {
        // An IPv6 socket on ::ffff:127.0.0.1 sees the client as ::ffff:127.0.0.1.
        let options = Options {
            listen_ip: "::ffff:127.0.0.1".parse().unwrap(),
            ..Options::default()
        };
        let server = TestServer::start_with(engine, options).await;
        let app = server.new_app("a").await;
        for (allowlist, allowed) in [
            ("127.0.0.0/8", true),
            ("::ffff:127.0.0.0/104", true),
            ("10.0.0.0/8", false),
            ("::ffff:10.0.0.0/104", false),
        ] {
            let key = server
                .mint_key(
                    &app,
                    MintKeyRequest {
                        cidr_allowlist: Some(vec![allowlist.into()]),
                        ..Default::default()
                    },
                )
                .await;
            let answer = server.app(&key.api_key).scopes().list().await;
            match answer {
                Ok(_) => assert!(allowed, "{allowlist} let a mapped peer in"),
                Err(e) => {
                    assert!(!allowed, "{allowlist}: {e}");
                    assert_eq!(e.code(), Some("ip_not_allowed"), "{allowlist}");
                }
            }
        }
        server.stop().await;

        // And an IPv4 peer matches an allowlist written in the IPv4-mapped form.
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let key = server
            .mint_key(
                &app,
                MintKeyRequest {
                    cidr_allowlist: Some(vec!["::ffff:127.0.0.0/104".into()]),
                    ..Default::default()
                },
            )
            .await;
        server.app(&key.api_key).scopes().list().await.unwrap();
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn attenuation_headers_only_narrow() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let app = server.new_app("a").await;
        let key = app.key.api_key.as_str();
        let derive = br#"{"scopes":["keys:read"],"expires_in":60}"#.to_vec();
        let narrowed = server
            .raw(key, "POST", "/sdk/keys/derive")
            .body(derive.clone())
            .signed_header(headers::SCOPE_CONSTRAINTS, "keys:read")
            .send()
            .await;
        assert_eq!(narrowed.status, 403, "keys:derive was constrained away");
        assert_eq!(narrowed.code(), Some("insufficient_scope"));
        assert_eq!(
            narrowed.json["required"],
            serde_json::json!(["keys:derive"])
        );
        assert_eq!(narrowed.json["granted"], serde_json::json!(["keys:read"]));

        let held = server
            .mint_key(
                &app,
                MintKeyRequest {
                    scopes: Some(vec!["keys:derive".into(), "keys:read".into()]),
                    ..Default::default()
                },
            )
            .await;
        let widening = server
            .raw(&held.api_key, "GET", "/sdk/scopes")
            .signed_header(headers::SCOPE_CONSTRAINTS, "keys:read,keys:admin")
            .send()
            .await;
        assert_eq!(widening.status, 400);
        assert_eq!(widening.code(), Some("constraint_not_narrowing"));
        for bad in ["", "*", "keys:read,,keys:derive", "not-a-scope"] {
            let response = server
                .raw(key, "GET", "/sdk/scopes")
                .signed_header(headers::SCOPE_CONSTRAINTS, bad)
                .send()
                .await;
            assert_eq!(response.status, 400, "{bad:?}");
        }
        let bad_rule = server
            .raw(key, "GET", "/sdk/scopes")
            .signed_header(headers::REQUEST_RULE, "e30")
            .send()
            .await;
        assert_eq!(bad_rule.status, 400);
        assert_eq!(bad_rule.code(), Some("invalid_attenuation"));
        let bad_context = server
            .raw(key, "GET", "/sdk/scopes")
            .signed_header(headers::CONTEXT, "[1]")
            .send()
            .await;
        assert_eq!(bad_context.status, 422);
        server.stop().await;
    })
    .await;
}

/// Behind a trusted reverse proxy the client is the address the proxy forwarded: a key's CIDR
/// allowlist is checked against it, and an address the client wrote into `X-Forwarded-For`
/// itself does not count. Without a trusted proxy the header is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_peer() {
    on_every_engine(|engine| async move {
        let behind_proxy = Options {
            http: alter_server::HttpLimits {
                trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
                ..Default::default()
            },
            ..Options::default()
        };
        for (options, trusted) in [(behind_proxy, true), (Options::default(), false)] {
            let server = TestServer::start_with(engine, options).await;
            let app = server.new_app("a").await;
            let key = server
                .mint_key(
                    &app,
                    MintKeyRequest {
                        cidr_allowlist: Some(vec!["203.0.113.0/24".into()]),
                        ..Default::default()
                    },
                )
                .await;
            let status = |forwarded: &'static str| {
                let request = server.raw(&key.api_key, "GET", "/sdk/scopes");
                async move { request.header("X-Forwarded-For", forwarded).send().await }
            };
            let from_allowed = status("203.0.113.7").await;
            let forged = status("203.0.113.7, 198.51.100.1").await;
            let elsewhere = status("198.51.100.1").await;
            if trusted {
                assert_eq!(from_allowed.status, 200, "{:?}", from_allowed.json);
            } else {
                assert_eq!(from_allowed.code(), Some("ip_not_allowed"));
            }
            assert_eq!(forged.code(), Some("ip_not_allowed"));
            assert_eq!(elsewhere.code(), Some("ip_not_allowed"));
            server.stop().await;
        }
    })
    .await;
}
