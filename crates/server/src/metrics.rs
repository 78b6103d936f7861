//! `GET /metrics`: this node's metrics in the Prometheus text exposition format (0.0.4),
//! behind the admin token. Written by hand — the format is a few lines of text — from the
//! HTTP counters kept here, the vault's decision counters and the store's commit and pool
//! figures. Labels carry only route templates, methods, status classes, modes, outcomes and
//! pool names: never an id, a user, a URL, a host or a secret. See `docs/observability.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alter_core::metrics::{Histogram, HistogramSnapshot, MODES, RefreshOutcome};
use alter_store::SqlStore;
use alter_upstream::otlp::{ExportCounts, OtlpExporter};
use axum::Extension;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Operator;
use crate::state::AppState;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the request-latency histogram, in seconds.
const REQUEST_SECONDS_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// What this node measures; one per server, shared by every request.
#[derive(Debug)]
pub struct Metrics {
    http: Mutex<BTreeMap<SeriesKey, Arc<Histogram>>>,
    store: SqlStore,
}

/// One request series: route template, method, status class.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    route: String,
    method: &'static str,
    class: &'static str,
}

impl Metrics {
    /// Metrics over `store`'s commit and pool figures.
    pub fn new(store: SqlStore) -> Metrics {
        Metrics {
            http: Mutex::default(),
            store,
        }
    }

    fn observe(&self, key: SeriesKey, seconds: f64) {
        let series = {
            let Ok(mut http) = self.http.lock() else {
                return;
            };
            http.entry(key)
                .or_insert_with(|| Arc::new(Histogram::new(&REQUEST_SECONDS_BOUNDS)))
                .clone()
        };
        series.observe(seconds);
    }

    /// The whole exposition, with the vault's counters of `state` and what the OTLP exporter
    /// did (zeros when none is configured).
    fn render(&self, state: &AppState, otlp: ExportCounts) -> String {
        let mut out = String::new();
        let http: Vec<(SeriesKey, HistogramSnapshot)> = match self.http.lock() {
            Ok(http) => http
                .iter()
                .map(|(k, h)| (k.clone(), h.snapshot()))
                .collect(),
            Err(_) => Vec::new(),
        };
        header(
            &mut out,
            "alter_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status class.",
        );
        for (key, snapshot) in &http {
            sample(
                &mut out,
                "alter_http_requests_total",
                &key.labels(),
                snapshot.count as f64,
            );
        }
        header(
            &mut out,
            "alter_http_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer's headers, by route template, method and status class.",
        );
        for (key, snapshot) in &http {
            histogram(
                &mut out,
                "alter_http_request_duration_seconds",
                &key.labels(),
                snapshot,
            );
        }

        let counters = state.vault.counters().snapshot();
        header(
            &mut out,
            "alter_credential_releases_total",
            "counter",
            "Credential releases committed (audited before the answer), by mode.",
        );
        for ((_, mode), count) in MODES.iter().zip(counters.releases) {
            sample(
                &mut out,
                "alter_credential_releases_total",
                &[("mode", mode)],
                count as f64,
            );
        }
        header(
            &mut out,
            "alter_credential_denials_total",
            "counter",
            "Credential uses refused and audited, by mode.",
        );
        for ((_, mode), count) in MODES.iter().zip(counters.denials) {
            sample(
                &mut out,
                "alter_credential_denials_total",
                &[("mode", mode)],
                count as f64,
            );
        }
        header(
            &mut out,
            "alter_credential_holds_total",
            "counter",
            "Proxied calls held for a human's approval.",
        );
        sample(
            &mut out,
            "alter_credential_holds_total",
            &[("mode", "proxy")],
            counters.holds as f64,
        );
        header(
            &mut out,
            "alter_oauth_refreshes_total",
            "counter",
            "OAuth access-token refreshes asked of a provider, by outcome (refreshed, invalid_grant, failed).",
        );
        for (outcome, count) in RefreshOutcome::ALL.iter().zip(counters.refreshes) {
            sample(
                &mut out,
                "alter_oauth_refreshes_total",
                &[("outcome", outcome.as_str())],
                count as f64,
            );
        }

        let commits = self.store.commit_stats();
        header(
            &mut out,
            "alter_group_commit_batch_size",
            "histogram",
            "Jobs (nonce claims, release and audit writes) committed per group-commit transaction.",
        );
        histogram(
            &mut out,
            "alter_group_commit_batch_size",
            &[],
            &commits.batch_sizes.snapshot(),
        );
        header(
            &mut out,
            "alter_group_commit_duration_seconds",
            "histogram",
            "Time to commit one group-commit batch (audit events durable), connection wait included.",
        );
        histogram(
            &mut out,
            "alter_group_commit_duration_seconds",
            &[],
            &commits.commit_seconds.snapshot(),
        );

        header(
            &mut out,
            "alter_kek_version",
            "gauge",
            "The key-encryption key version this node seals new values under (after `alter keys rotate-kek`, every node should show the new one within seconds).",
        );
        sample(
            &mut out,
            "alter_kek_version",
            &[],
            f64::from(state.vault.kek_version()),
        );

        header(
            &mut out,
            "alter_otlp_spans_exported_total",
            "counter",
            "Trace spans the OTLP collector accepted.",
        );
        sample(
            &mut out,
            "alter_otlp_spans_exported_total",
            &[],
            otlp.exported as f64,
        );
        header(
            &mut out,
            "alter_otlp_spans_dropped_total",
            "counter",
            "Trace spans dropped, by reason: queue_full (the export queue was full), export_failed (the collector refused them or could not be reached).",
        );
        for (reason, count) in [
            ("queue_full", otlp.dropped_queue_full),
            ("export_failed", otlp.dropped_export_failed),
        ] {
            sample(
                &mut out,
                "alter_otlp_spans_dropped_total",
                &[("reason", reason)],
                count as f64,
            );
        }

        let pools = self.store.pool_stats();
        for (name, help, value) in [
            (
                "alter_db_pool_connections",
                "Database connections open, by pool.",
                (|p: &alter_store::metrics::PoolStats| p.size) as fn(&_) -> u32,
            ),
            (
                "alter_db_pool_idle_connections",
                "Database connections open and idle, by pool.",
                |p| p.idle,
            ),
            (
                "alter_db_pool_max_connections",
                "Most database connections a pool opens.",
                |p| p.max,
            ),
        ] {
            header(&mut out, name, "gauge", help);
            for pool in &pools {
                sample(
                    &mut out,
                    name,
                    &[("pool", pool.pool)],
                    f64::from(value(pool)),
                );
            }
        }
        out
    }
}

impl SeriesKey {
    fn labels(&self) -> [(&str, &str); 3] {
        [
            ("route", &self.route),
            ("method", self.method),
            ("status", self.class),
        ]
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, text)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape(text));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

fn histogram(out: &mut String, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
    let bucket = format!("{name}_bucket");
    for (bound, count) in &h.buckets {
        let le = number(*bound);
        let mut with_le = labels.to_vec();
        with_le.push(("le", &le));
        sample(out, &bucket, &with_le, *count as f64);
    }
    let mut with_le = labels.to_vec();
    with_le.push(("le", "+Inf"));
    sample(out, &bucket, &with_le, h.count as f64);
    sample(out, &format!("{name}_sum"), labels, h.sum);
    sample(out, &format!("{name}_count"), labels, h.count as f64);
}

/// A value as Prometheus reads it (`+Inf`, `-Inf`, `NaN`, or a float).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

/// A label value escaped: backslash, double quote and newline.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The method label: one of the standard methods, else `other` (a client picks the method: it
/// must not grow the series without bound).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware around every route: counts and times each request by its route template (never
/// the raw path).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    state.metrics.observe(
        SeriesKey {
            route,
            method,
            class: status_class(response.status().as_u16()),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: the operator's scrape of this node.
pub async fn scrape(
    _: Operator,
    State(state): State<AppState>,
    exporter: Option<Extension<OtlpExporter>>,
) -> Response {
    let otlp = exporter.map(|Extension(e)| e.counts()).unwrap_or_default();
    let body = state.metrics.render(&state, otlp);
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_labels_are_written_as_the_format_reads_them() {
        assert_eq!(number(0.005), "0.005");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut out = String::new();
        sample(
            &mut out,
            "x_total",
            &[("route", "/sdk/grants/{id}/mint")],
            3.0,
        );
        assert_eq!(out, "x_total{route=\"/sdk/grants/{id}/mint\"} 3\n");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(401), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
