//! The served OpenAPI document matches the router both ways: every route the router declares
//! is documented or is a browser page named in `openapi::EXCLUDED`, and on every documented
//! path the real server serves exactly the documented methods.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use alter_server::routes::SDK_ROUTES;
use alter_server::routes::openapi::EXCLUDED;
use alter_testkit::{Engine, TestServer};
use serde_json::Value;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Every path literal given to `.route(` in the server's sources (tests aside), and the
/// `/sdk/*` table's.
fn declared_paths() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src");
    let mut files = vec![root];
    let mut found = BTreeSet::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        // Unit tests (at the end of a file) build routers of their own.
        let source = source.split("#[cfg(test)]").next().unwrap();
        for (at, _) in source.match_indices(".route(") {
            let rest = source[at + ".route(".len()..].trim_start();
            if let Some(literal) = rest.strip_prefix('"') {
                found.insert(literal[..literal.find('"').unwrap()].to_owned());
            }
        }
    }
    found.extend(SDK_ROUTES.iter().map(|r| r.path.to_owned()));
    assert!(found.len() > 50, "the scan found the routes: {found:?}");
    found
}

/// Whether the server routes `method path` (anything but "no such route" or "method not
/// allowed"; the request carries no credentials, so it changes nothing).
async fn served(client: &reqwest::Client, base: &str, method: &str, path: &str) -> bool {
    let concrete: Vec<&str> = path
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect();
    let url = format!("{base}{}", concrete.join("/"));
    let response = client
        .request(method.parse().unwrap(), &url)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let unrouted = (status == 404 && body["message"] == "no such route")
        || (status == 405 && body["error"] == "method_not_allowed");
    !unrouted
}

#[tokio::test]
async fn the_document_matches_the_router() {
    let server = TestServer::start(Engine::Sqlite).await;
    let base = server.base_url().to_owned();
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented
                .entry(path.clone())
                .or_default()
                .insert(method.to_ascii_uppercase());
        }
    }

    // Every declared route is documented (nested routers declare a suffix of the full path)
    // or deliberately excluded.
    for literal in declared_paths() {
        let excluded = EXCLUDED.iter().any(|prefix| literal.starts_with(prefix));
        let described = documented.keys().any(|path| path.ends_with(&literal));
        assert!(
            excluded ^ described,
            "{literal}: documented {described}, excluded {excluded}"
        );
    }

    // On every documented path, the server serves exactly the documented methods.
    for (path, methods) in &documented {
        let mut live = BTreeSet::new();
        for method in METHODS {
            if served(&client, &base, method, path).await {
                live.insert(method.to_owned());
            }
        }
        assert_eq!(&live, methods, "{path}");
    }
    server.stop().await;
}
