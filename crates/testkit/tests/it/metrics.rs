//! `GET /metrics`: the Prometheus text exposition behind the admin token — every line valid,
//! counters (releases, denials, holds) moved by exactly what was done, histograms cumulative, routes by template.

use std::collections::BTreeMap;

use alter_proto::admin::CreateSecretRequest;
use alter_sdk::{CreateAgent, Principal, ProviderRequest, ProxyOutcome};
use alter_testkit::upstream::Upstream;
use alter_testkit::{TestServer, on_every_engine};
use serde_json::json;

/// A sample's labels, in order as written.
type Labels = Vec<(String, String)>;

/// One sample: its name and labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Series {
    name: String,
    labels: Labels,
}

/// A whole exposition, read strictly: every line is a `# HELP`, a `# TYPE` or a sample of a
/// declared metric, names are `[a-zA-Z_:][a-zA-Z0-9_:]*`, values are numbers.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<Series, f64>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {text:?}")),
    }
}

/// The labels of `{…}` (without the braces), unescaping values.
fn labels(text: &str) -> Labels {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(valid_label_name(name), "label name {name:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("a closed label value");
            match c {
                '\\' => match chars.next().expect("an escape").1 {
                    'n' => value.push('\n'),
                    other @ ('\\' | '"') => value.push(other),
                    other => panic!("bad escape \\{other}"),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((name.to_owned(), value));
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    out
}

fn parse(body: &str) -> Exposition {
    let mut exposition = Exposition::default();
    let mut helped = BTreeMap::new();
    assert!(body.ends_with('\n'), "the last line ends");
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("# HELP name text");
            assert!(valid_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(
                helped.insert(name.to_owned(), ()).is_none(),
                "HELP twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                exposition
                    .types
                    .insert(name.to_owned(), kind.to_owned())
                    .is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let (series, number) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, labels(rest.strip_suffix('}').expect("labels close"))),
            None => (series, Vec::new()),
        };
        assert!(valid_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|f| exposition.types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            exposition.types.contains_key(family),
            "a sample of an undeclared metric: {line}"
        );
        let v = value(number);
        assert!(!v.is_nan(), "{line}");
        let series = Series {
            name: name.to_owned(),
            labels,
        };
        assert!(
            exposition.samples.insert(series, v).is_none(),
            "a series twice: {line}"
        );
    }
    exposition
}

impl Exposition {
    /// The value of `name` with exactly `labels`, or 0 when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let series = Series {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.samples.get(&series).copied().unwrap_or(0.0)
    }

    /// Every histogram's buckets are cumulative, end with `+Inf`, and agree with `_count`.
    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, kind)| *kind == "histogram") {
            let bucket = format!("{family}_bucket");
            let mut by_series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for (series, v) in &self.samples {
                if series.name != bucket {
                    continue;
                }
                let (le, rest): (Vec<_>, Vec<_>) =
                    series.labels.iter().cloned().partition(|(k, _)| k == "le");
                let le = value(&le.first().expect("a bucket has le").1);
                by_series.entry(rest).or_default().push((le, *v));
            }
            for (labels, mut buckets) in by_series {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert!(
                    buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{family} {labels:?} not cumulative: {buckets:?}"
                );
                let last = buckets.last().expect("buckets");
                assert!(last.0.is_infinite(), "{family}: the last bucket is +Inf");
                let count = self.samples[&Series {
                    name: format!("{family}_count"),
                    labels: labels.clone(),
                }];
                assert_eq!(last.1, count, "{family} {labels:?}: +Inf bucket = _count");
                assert!(self.samples.contains_key(&Series {
                    name: format!("{family}_sum"),
                    labels: labels.clone(),
                }));
            }
        }
    }
}

async fn scrape(server: &TestServer) -> (String, Exposition) {
    let response = reqwest::Client::new()
        .get(format!("{}/metrics", server.base_url()))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let body = response.text().await.unwrap();
    let exposition = parse(&body);
    exposition.check_histograms();
    (body, exposition)
}

#[tokio::test]
async fn metrics_need_the_admin_token() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let client = reqwest::Client::new();
        let url = format!("{}/metrics", server.base_url());
        for request in [
            client.get(&url),
            client.get(&url).bearer_auth("not-the-admin-token"),
            client.get(&url).bearer_auth(&world.app.key.api_key),
            client
                .get(&url)
                .header("authorization", server.admin_token()),
        ] {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401);
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_admin_token");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_count_releases_denials_and_proxied_calls_exactly() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        let world = server.world("a").await;
        let upstream = Upstream::start().await;
        upstream.answer(200, &[], r#"{"ok":true}"#);
        let secret = server
            .admin()
            .create_secret(
                &world.app.info.id,
                &CreateSecretRequest {
                    name: "Metered".into(),
                    secret_type: "bearer".into(),
                    value: "sk_live_metricsBearer0123456789".into(),
                    allowed_hosts: vec!["127.0.0.1".into()],
                    principals: vec!["system".into(), "agent".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let app = server.app(&world.app.key.api_key);
        let grant = app
            .create_managed_secret_grant(&secret.id, Principal::system(), None)
            .await
            .unwrap()
            .grant_id;

        // An agent whose proxied calls need a human's approval, holding its own grant.
        let careful = app
            .agents()
            .create(CreateAgent {
                policy: Some(json!({"requires_approval": true})),
                ..CreateAgent::new("careful", json!({"managed_secret_slugs": [secret.slug]}))
            })
            .await
            .unwrap();
        let careful = server.agent(&careful.api_key.unwrap());
        let careful_grant = careful
            .create_managed_secret_grant(&secret.id, None, None)
            .await
            .unwrap()
            .grant_id;

        let (_, before) = scrape(&server).await;
        let url = format!("{}/v1/items", upstream.url());
        // A release (retrieve mode), a denial (a host the secret may not reach), a proxied call.
        app.request(ProviderRequest::get(&url).grant_id(&grant))
            .await
            .unwrap();
        app.request(ProviderRequest::get("https://evil.example/x").grant_id(&grant))
            .await
            .unwrap_err();
        let proxied = app
            .proxy_request(ProviderRequest::get(&url).grant_id(&grant))
            .await
            .and_then(ProxyOutcome::completed)
            .unwrap();
        assert_eq!(proxied.status_code, 200);
        let held = careful
            .proxy_request(
                ProviderRequest::get(&url)
                    .grant_id(&careful_grant)
                    .reason("metrics test"),
            )
            .await
            .unwrap();
        assert!(matches!(held, ProxyOutcome::Pending(_)), "{held:?}");
        // A route with an id in its path.
        let reported = server
            .raw(
                &world.app.key.api_key,
                "POST",
                &format!("/sdk/grants/{grant}/report-scope-mismatch"),
            )
            .body(b"{}".to_vec())
            .send()
            .await;
        let (body, after) = scrape(&server).await;

        let delta = |name: &str, labels: &[(&str, &str)]| {
            after.get(name, labels) - before.get(name, labels)
        };
        assert_eq!(
            delta("alter_credential_releases_total", &[("mode", "retrieve")]),
            1.0
        );
        assert_eq!(
            delta("alter_credential_releases_total", &[("mode", "proxy")]),
            1.0
        );
        assert_eq!(
            delta("alter_credential_denials_total", &[("mode", "retrieve")]),
            1.0
        );
        assert_eq!(
            delta("alter_credential_denials_total", &[("mode", "proxy")]),
            0.0
        );
        assert_eq!(
            delta("alter_credential_holds_total", &[("mode", "proxy")]),
            1.0
        );
        for outcome in ["refreshed", "invalid_grant", "failed"] {
            assert_eq!(
                delta("alter_oauth_refreshes_total", &[("outcome", outcome)]),
                0.0,
                "{outcome}"
            );
        }
        let requests = |route: &str, status: &str| {
            delta(
                "alter_http_requests_total",
                &[("route", route), ("method", "POST"), ("status", status)],
            )
        };
        assert_eq!(requests("/sdk/token", "2xx"), 1.0);
        assert_eq!(requests("/sdk/token", "4xx"), 1.0);
        // The proxied call and the held one (answered 202).
        assert_eq!(requests("/sdk/proxy", "2xx"), 2.0);
        assert_eq!(requests("/sdk/proxy", "4xx"), 0.0);
        let class = match reported.status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        assert_eq!(
            requests("/sdk/grants/{id}/report-scope-mismatch", class),
            1.0,
            "the route template, never the path"
        );
        let duration_count = |route: &str, status: &str| {
            delta(
                "alter_http_request_duration_seconds_count",
                &[("route", route), ("method", "POST"), ("status", status)],
            )
        };
        assert_eq!(duration_count("/sdk/token", "2xx"), 1.0);
        assert_eq!(duration_count("/sdk/proxy", "2xx"), 2.0);
        // The previous scrape, counted once it answered.
        assert_eq!(
            delta(
                "alter_http_requests_total",
                &[("route", "/metrics"), ("method", "GET"), ("status", "2xx")]
            ),
            1.0
        );
        // The releases', denial's and nonces' writes went through the group commit.
        assert!(delta("alter_group_commit_batch_size_count", &[]) >= 1.0);
        assert!(delta("alter_group_commit_duration_seconds_count", &[]) >= 1.0);
        assert!(after.get("alter_group_commit_duration_seconds_sum", &[]) > 0.0);
        let pools: &[&str] = match engine {
            alter_testkit::Engine::Sqlite => &["read", "write"],
            alter_testkit::Engine::Postgres => &["shared"],
        };
        for pool in pools {
            let size = after.get("alter_db_pool_connections", &[("pool", pool)]);
            let idle = after.get("alter_db_pool_idle_connections", &[("pool", pool)]);
            let max = after.get("alter_db_pool_max_connections", &[("pool", pool)]);
            assert!(
                size >= 1.0 && idle <= size && size <= max,
                "{pool}: {size} {idle} {max}"
            );
        }
        assert_eq!(after.get("alter_kek_version", &[]), 1.0);
        // No id, host or secret in any label.
        for never in [
            grant.as_str(),
            careful_grant.as_str(),
            world.app.info.id.as_str(),
            "127.0.0.1",
            "evil.example",
            "sk_live_metricsBearer0123456789",
            &world.app.key.api_key,
        ] {
            assert!(!body.contains(never), "{never} in the metrics");
        }
        server.stop().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_count_oauth_refreshes_and_their_failures() {
    use crate::connect::{PROVIDER, revoke_refresh_token_at_peer, setup};
    on_every_engine(|engine| async move {
        let s = setup(TestServer::start(engine).await, false).await;
        s.connect(json!({ "allowed_providers": [PROVIDER] })).await;
        let (_, before) = scrape(&s.server).await;
        // Expired: the release refreshes it at the provider.
        s.server.advance(3600);
        assert_eq!(s.release().await.status, 200);
        let (_, refreshed) = scrape(&s.server).await;
        let moved = |after: &Exposition, outcome: &str| {
            after.get("alter_oauth_refreshes_total", &[("outcome", outcome)])
                - before.get("alter_oauth_refreshes_total", &[("outcome", outcome)])
        };
        assert_eq!(moved(&refreshed, "refreshed"), 1.0);
        assert_eq!(moved(&refreshed, "invalid_grant"), 0.0);
        // The user revoked the app at the provider: the next refresh is refused.
        revoke_refresh_token_at_peer(&s).await;
        s.server.advance(3600);
        assert_eq!(s.release().await.code(), Some("credential_revoked"));
        let (_, failed) = scrape(&s.server).await;
        assert_eq!(moved(&failed, "refreshed"), 1.0);
        assert_eq!(moved(&failed, "invalid_grant"), 1.0);
        assert_eq!(moved(&failed, "failed"), 0.0);
        let retrieve = [("mode", "retrieve")];
        assert_eq!(
            failed.get("alter_credential_releases_total", &retrieve)
                - before.get("alter_credential_releases_total", &retrieve),
            1.0
        );
        assert_eq!(
            failed.get("alter_credential_denials_total", &retrieve)
                - before.get("alter_credential_denials_total", &retrieve),
            1.0,
            "the refused refresh is a denial"
        );
    })
    .await;
}
