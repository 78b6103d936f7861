//! `POST /sdk/spans` (the client's `spans.emit`, protocol part 1 §7.4): caller-defined trace
//! spans — telemetry labels around the vault's own records, not audit evidence — and the
//! operator's view of one trace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A batch of spans.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmitSpansRequest {
    /// 1 to 50 spans.
    pub spans: Vec<SpanItem>,
}

/// One span as the client sends it (absent optional fields are omitted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpanItem {
    /// 1 to 255 characters.
    pub trace_id: String,
    /// 1 to 255 characters.
    pub name: String,
    /// ISO date-time (UTC when it names no offset).
    pub start_time: String,
    /// 1 to 32 characters; the server makes one when absent. A `(trace_id, span_id)` sent again
    /// is absorbed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// 1 to 32 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// ISO date-time, not before `start_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// String attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// The answer: how many spans were newly stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EmitSpansResponse {
    /// Spans stored by this batch (resent ones are not counted again).
    pub accepted: u64,
}

/// A stored span, as the operator's trace view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpanView {
    /// The trace.
    pub trace_id: String,
    /// The span.
    pub span_id: String,
    /// Its parent, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// The caller's name for it.
    pub name: String,
    /// RFC 3339, UTC.
    pub start_time: String,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// String attributes.
    pub attributes: BTreeMap<String, String>,
    /// The key that sent it.
    pub key_id: String,
    /// The agent that sent it, if an agent's key did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// `GET /admin/v1/apps/{app}/traces/{trace_id}`: the vault's own records of a trace (audit
/// events of calls that carried its `traceparent`) beside the caller's spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TraceView {
    /// The trace.
    pub trace_id: String,
    /// Audit events of the trace, oldest first.
    pub events: Vec<crate::admin::AuditEventView>,
    /// The caller's spans, by start time.
    pub spans: Vec<SpanView>,
}
