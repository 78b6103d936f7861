//! OpenTelemetry trace export over OTLP/HTTP with the JSON encoding (`POST {endpoint}` with
//! `Content-Type: application/json`, the `ExportTraceServiceRequest` message). One server span
//! per request; the server continues the caller's trace when it sends a `traceparent`.
//!
//! Spans carry the method, the route *template*, the status, the request id and timings —
//! never headers, bodies, query strings or ids from the path. Export never slows a request:
//! spans go through a bounded queue to a background task that sends them in batches; when the
//! queue is full or the collector is down, spans are dropped and counted (`/metrics`:
//! `alter_otlp_spans_exported_total`, `alter_otlp_spans_dropped_total{reason}`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Url;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Spans queued at most; more are dropped.
const QUEUE: usize = 4096;
/// Spans per export request at most.
const BATCH: usize = 512;
/// How long a span waits for others to fill its batch.
const LINGER: Duration = Duration::from_millis(500);
/// Whole-request timeout of an export.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A value of a span attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
}

/// A finished server span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpan {
    /// The trace: the caller's (from `traceparent`) or a new one.
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The caller's span, when it sent a `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
    /// `METHOD /route/{template}`.
    pub name: String,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes (semantic-convention names where there are some).
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// True for a server error (status 5xx).
    pub error: bool,
}

/// Where spans go: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct OtlpExporter {
    queue: mpsc::Sender<ServerSpan>,
    counts: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    exported: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_export_failed: AtomicU64,
}

/// What an exporter did so far (`alter_otlp_spans_*_total` in `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Spans the collector accepted.
    pub exported: u64,
    /// Spans dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Spans dropped because the collector refused them or could not be reached.
    pub dropped_export_failed: u64,
}

impl OtlpExporter {
    /// Starts exporting to `endpoint` (the full URL, e.g. `http://collector:4318/v1/traces`)
    /// with the resource attribute `service.name = alter` and `service.instance.id =
    /// instance`. Returns the exporter and its task.
    pub fn start(endpoint: &str, instance: &str) -> Result<(OtlpExporter, JoinHandle<()>), String> {
        let url = Url::parse(endpoint).map_err(|_| "otlp endpoint: not a valid URL".to_owned())?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
        {
            return Err(
                "otlp endpoint: must be an http(s) URL without credentials or a query".into(),
            );
        }
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("alter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("otlp exporter: {e}"))?;
        let (queue, spans) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counters::default());
        let resource = json!({"attributes": [
            attribute("service.name", &AttributeValue::Text("alter".into())),
            attribute("service.version", &AttributeValue::Text(env!("CARGO_PKG_VERSION").into())),
            attribute("service.instance.id", &AttributeValue::Text(instance.into())),
        ]});
        let task = tokio::spawn(export(spans, client, url, resource, counts.clone()));
        Ok((OtlpExporter { queue, counts }, task))
    }

    /// Queues `span`; drops it when the queue is full.
    pub fn record(&self, span: ServerSpan) {
        if self.queue.try_send(span).is_err() {
            self.counts
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans exported and dropped so far.
    pub fn counts(&self) -> ExportCounts {
        ExportCounts {
            exported: self.counts.exported.load(Ordering::Relaxed),
            dropped_queue_full: self.counts.dropped_queue_full.load(Ordering::Relaxed),
            dropped_export_failed: self.counts.dropped_export_failed.load(Ordering::Relaxed),
        }
    }
}

async fn export(
    mut spans: mpsc::Receiver<ServerSpan>,
    client: reqwest::Client,
    url: Url,
    resource: Value,
    counts: Arc<Counters>,
) {
    let mut failing = false;
    while let Some(first) = spans.recv().await {
        let mut batch = vec![first];
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            tokio::select! {
                next = spans.recv() => match next {
                    Some(span) => batch.push(span),
                    None => break,
                },
                () = &mut linger => break,
            }
        }
        let body = request_body(&resource, &batch);
        let sent = client
            .post(url.clone())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let refused = match sent {
            Ok(answer) if answer.status().is_success() => None,
            Ok(answer) => Some(format!("HTTP {}", answer.status().as_u16())),
            Err(e) => Some(if e.is_timeout() {
                "timed out".into()
            } else {
                "unreachable".into()
            }),
        };
        let spans_sent = batch.len() as u64;
        match refused {
            Some(why) => {
                counts
                    .dropped_export_failed
                    .fetch_add(spans_sent, Ordering::Relaxed);
                // One line when the collector starts failing, one when it is back.
                if !failing {
                    tracing::warn!(reason = %why, "exporting trace spans failed; dropping them until it works");
                }
                failing = true;
            }
            None => {
                counts.exported.fetch_add(spans_sent, Ordering::Relaxed);
                if failing {
                    tracing::info!("exporting trace spans works again");
                    failing = false;
                }
            }
        }
    }
}

/// The `ExportTraceServiceRequest` of `spans`, in OTLP's JSON encoding (ids in hex, 64-bit
/// integers as strings).
pub fn request_body(resource: &Value, spans: &[ServerSpan]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|span| {
            let mut out = json!({
                "traceId": hex::encode(span.trace_id),
                "spanId": hex::encode(span.span_id),
                "name": span.name,
                "kind": 2,
                "startTimeUnixNano": span.start_unix_nanos.to_string(),
                "endTimeUnixNano": span.end_unix_nanos.to_string(),
                "attributes": span.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                "status": {"code": if span.error { 2 } else { 0 }},
            });
            if let Some(parent) = span.parent_span_id {
                out["parentSpanId"] = Value::String(hex::encode(parent));
            }
            out
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "alter", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

fn attribute(key: &str, value: &AttributeValue) -> Value {
    let value = match value {
        AttributeValue::Text(text) => json!({"stringValue": text}),
        AttributeValue::Int(n) => json!({"intValue": n.to_string()}),
    };
    json!({"key": key, "value": value})
}

/// The trace id and parent span id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`,
/// lowercase, ids not all zero); `None` for anything else.
pub fn parse_traceparent(header: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = header.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let lower_hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    if parts.next().is_some()
        || version != "00"
        || !lower_hex(trace, 32)
        || !lower_hex(span, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    hex::decode_to_slice(trace, &mut trace_id).ok()?;
    hex::decode_to_slice(span, &mut span_id).ok()?;
    (trace_id != [0; 16] && span_id != [0; 8]).then_some((trace_id, span_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_parsed_strictly() {
        let (trace, span) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(trace), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(span), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_request_body_is_otlp_json() {
        let span = ServerSpan {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: Some([3; 8]),
            name: "POST /sdk/token".into(),
            start_unix_nanos: 10,
            end_unix_nanos: 20,
            attributes: vec![("http.response.status_code", AttributeValue::Int(200))],
            error: false,
        };
        let body = request_body(&json!({"attributes": []}), &[span]);
        let out = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(out["traceId"], "01010101010101010101010101010101");
        assert_eq!(out["parentSpanId"], "0303030303030303");
        assert_eq!(out["startTimeUnixNano"], "10");
        assert_eq!(out["attributes"][0]["value"]["intValue"], "200");
    }
}
