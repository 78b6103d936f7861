//! Logs to stderr, as text or JSON. Request logs carry method, route, status and latency —
//! never headers or bodies, which hold keys and credentials.

use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Type of [`http_trace_layer`].
pub type HttpTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<axum::body::Body>) -> Span,
    (),
    fn(&Response<axum::body::Body>, Duration, &Span),
>;

/// One span per request (method and matched route) and one line per response.
pub fn http_trace_layer() -> HttpTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(make_span as fn(&Request<axum::body::Body>) -> Span)
        .on_request(())
        .on_response(on_response as fn(&Response<axum::body::Body>, Duration, &Span))
}

fn make_span(request: &Request<axum::body::Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    tracing::info_span!("request", method = %request.method(), route = %route)
}

fn on_response(response: &Response<axum::body::Body>, latency: Duration, _: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "response"
    );
}
