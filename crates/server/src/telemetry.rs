//! Logs to stderr, as text or JSON. Request logs carry method, route, status, latency and the
//! request's id — never headers or bodies, which hold keys and credentials. Optionally, one
//! OpenTelemetry span per request is exported over OTLP ([`alter_upstream::otlp`]),
//! continuing the caller's trace when it sends a `traceparent`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alter_upstream::otlp::{AttributeValue, OtlpExporter, ServerSpan, parse_traceparent};
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Request, Response};
use axum::middleware::Next;
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

/// The OTLP endpoint to export to, from a configured value: unset or empty means no export
/// (so `ALTER_OTLP_ENDPOINT=` turns it off).
pub fn otlp_endpoint(configured: Option<&str>) -> Option<String> {
    configured
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
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
    let route = route_of(request);
    let id = request
        .extensions()
        .get::<RequestId>()
        .map_or("", |id| id.0.as_ref());
    let client = request
        .extensions()
        .get::<ClientRequestId>()
        .map(|id| id.0.to_string());
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route,
        request_id = %id,
        client_request_id = client,
    )
}

fn route_of<B>(request: &Request<B>) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
}

/// The header a request's id travels in, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request's id, in its log lines, its exported span and its answer's `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// The id a caller sent in `x-request-id` (a load balancer's), when it is a short plain
/// token: logged beside ours as `client_request_id`, never used as ours, so a caller cannot
/// pass its requests off as another's in the logs.
#[derive(Debug, Clone)]
pub struct ClientRequestId(pub Arc<str>);

/// Gives every request a new id, returned in the answer's `x-request-id`; keeps the caller's
/// own id, if it sent a plain one, as [`ClientRequestId`].
pub async fn request_id(
    mut request: Request<axum::body::Body>,
    next: Next,
) -> Response<axum::body::Body> {
    let given = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(|id| ClientRequestId(id.into()));
    let id: Arc<str> = hex::encode(random::<8>()).into();
    request.extensions_mut().insert(RequestId(id.clone()));
    if let Some(given) = given {
        request.extensions_mut().insert(given);
    }
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Exports one server span per request when an OTLP endpoint is configured: in the caller's
/// trace (as a child of its span) when it sent a valid `traceparent`, else in a new trace.
pub async fn export_span(
    State(exporter): State<Option<OtlpExporter>>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Response<axum::body::Body> {
    let Some(exporter) = exporter else {
        return next.run(request).await;
    };
    let mut request = request;
    // For `/metrics`, which reports what the exporter did.
    request.extensions_mut().insert(exporter.clone());
    let start = unix_nanos();
    let name = format!("{} {}", request.method(), route_of(&request));
    let mut attributes = vec![
        (
            "http.request.method",
            AttributeValue::Text(request.method().to_string()),
        ),
        (
            "http.route",
            AttributeValue::Text(route_of(&request).to_owned()),
        ),
    ];
    if let Some(id) = request.extensions().get::<RequestId>() {
        attributes.push(("alter.request_id", AttributeValue::Text(id.0.to_string())));
    }
    if let Some(id) = request.extensions().get::<ClientRequestId>() {
        attributes.push((
            "alter.client_request_id",
            AttributeValue::Text(id.0.to_string()),
        ));
    }
    let caller = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let response = next.run(request).await;
    let status = response.status();
    attributes.push((
        "http.response.status_code",
        AttributeValue::Int(i64::from(status.as_u16())),
    ));
    exporter.record(ServerSpan {
        trace_id: caller.map_or_else(random::<16>, |(trace, _)| trace),
        span_id: random::<8>(),
        parent_span_id: caller.map(|(_, span)| span),
        name,
        start_unix_nanos: start,
        end_unix_nanos: unix_nanos(),
        attributes,
        error: status.is_server_error(),
    });
    response
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Random ids; the system's random source failing is not worth failing a request over.
fn random<const N: usize>() -> [u8; N] {
    alter_crypto::random_bytes::<N>().unwrap_or([1; N])
}

fn on_response(response: &Response<axum::body::Body>, latency: Duration, _: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "response"
    );
}
