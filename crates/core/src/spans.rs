//! Caller-defined trace spans (`POST /sdk/spans`, the client's `spans.emit`): telemetry labels
//! an agent puts around its own steps so a trace shows them beside the vault's records. They
//! never touch a credential, are not audit evidence (no event, no chain) and are pruned after
//! [`SPAN_RETENTION_DAYS`]. A `(trace_id, span_id)` sent again is absorbed.

use std::collections::BTreeMap;

use alter_proto::spans::SpanItem;

use crate::audit::{EventFilter, StoredEvent};
use crate::caller::Caller;
use crate::error::{Result, ensure};
use crate::ids::{AgentId, AppId, KeyId};
use crate::scope::Scope;
use crate::time::Timestamp;
use crate::vault::Vault;

/// Most spans in one batch (the client checks it too).
pub const MAX_SPANS_PER_BATCH: usize = 50;
/// How long a span is kept.
pub const SPAN_RETENTION_DAYS: i64 = 7;
/// Most attributes of one span.
const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute name and value, in characters.
const MAX_ATTRIBUTE_NAME: usize = 256;
const MAX_ATTRIBUTE_VALUE: usize = 4096;
/// Most bytes of one span's attributes, names and values together: a label, not a payload
/// (and what a trace view of [`MAX_TRACE_ITEMS`] spans holds stays bounded).
const MAX_ATTRIBUTE_BYTES: usize = 16 * 1024;
/// Most events and spans one trace view shows.
pub const MAX_TRACE_ITEMS: i64 = 1000;

/// A span as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub app_id: AppId,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub attributes: BTreeMap<String, String>,
    /// The key that sent it, and its agent.
    pub key_id: KeyId,
    pub agent_id: Option<AgentId>,
    pub received_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A trace as the operator sees it: the vault's records of calls that carried it, and the
/// caller's spans.
#[derive(Debug, Clone)]
pub struct Trace {
    pub events: Vec<StoredEvent>,
    pub spans: Vec<Span>,
}

impl Vault {
    /// Stores a batch of spans for the caller's app (scope `spans:emit`; a paused agent may
    /// still report). The whole batch is checked first: one bad span refuses it, storing
    /// nothing. Returns how many were new.
    pub async fn emit_spans(&self, caller: &Caller, items: Vec<SpanItem>) -> Result<u64> {
        caller.require(&Scope::Action("spans:emit"))?;
        ensure((1..=MAX_SPANS_PER_BATCH).contains(&items.len()), || {
            format!("spans must hold 1 to {MAX_SPANS_PER_BATCH} items")
        })?;
        let now = self.now();
        let stamp = Stamp {
            app_id: caller.app_id,
            key_id: caller.key_id,
            agent_id: caller.agent_id(),
            received_at: now,
            expires_at: now.plus_seconds(SPAN_RETENTION_DAYS * 24 * 3600),
        };
        let spans = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                span_of(item, &stamp)
                    .map_err(|why| crate::Error::Invalid(format!("spans[{i}]: {why}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self.store().insert_spans(&spans).await?)
    }

    /// One trace of an app: its audit events (oldest first) and spans (by start), at most
    /// [`MAX_TRACE_ITEMS`] of each.
    pub async fn trace(&self, app: AppId, trace_id: &str) -> Result<Trace> {
        self.get_app(app).await?;
        let filter = EventFilter {
            trace_id: Some(trace_id.to_owned()),
            ..EventFilter::default()
        };
        let (events, spans) = tokio::join!(
            self.store().list_events(app, &filter, 0, MAX_TRACE_ITEMS),
            self.store().trace_spans(app, trace_id, MAX_TRACE_ITEMS),
        );
        let mut events = events?;
        events.sort_by_key(|e| e.seq);
        Ok(Trace {
            events,
            spans: spans?,
        })
    }

    /// Forgets spans past their retention; returns how many.
    pub async fn prune_spans(&self) -> Result<u64> {
        Ok(self.store().prune_spans(self.now()).await?)
    }
}

/// What the vault adds to each span of a batch: whose it is and when it was received.
struct Stamp {
    app_id: AppId,
    key_id: KeyId,
    agent_id: Option<AgentId>,
    received_at: Timestamp,
    expires_at: Timestamp,
}

/// The span `item` describes, checked, with the batch's `stamp`.
fn span_of(item: SpanItem, stamp: &Stamp) -> std::result::Result<Span, String> {
    let text = |field: &str, value: &str, max: usize| {
        let chars = value.chars().count();
        if chars == 0 || chars > max {
            return Err(format!("{field} must be 1 to {max} characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("{field} must not contain control characters"));
        }
        Ok(())
    };
    text("trace_id", &item.trace_id, 255)?;
    text("name", &item.name, 255)?;
    if let Some(id) = &item.span_id {
        text("span_id", id, 32)?;
    }
    if let Some(id) = &item.parent_span_id {
        text("parent_span_id", id, 32)?;
    }
    let start_time =
        parse_time(&item.start_time).ok_or("start_time must be an ISO 8601 date-time")?;
    let end_time = item
        .end_time
        .as_deref()
        .map(|t| parse_time(t).ok_or("end_time must be an ISO 8601 date-time"))
        .transpose()?;
    if end_time.is_some_and(|end| end < start_time) {
        return Err("end_time must not be before start_time".into());
    }
    if item.attributes.len() > MAX_ATTRIBUTES {
        return Err(format!("at most {MAX_ATTRIBUTES} attributes"));
    }
    let bytes: usize = item.attributes.iter().map(|(n, v)| n.len() + v.len()).sum();
    if bytes > MAX_ATTRIBUTE_BYTES {
        return Err(format!(
            "attributes must hold at most {MAX_ATTRIBUTE_BYTES} bytes in all"
        ));
    }
    for (name, value) in &item.attributes {
        text("an attribute name", name, MAX_ATTRIBUTE_NAME)?;
        if value.chars().count() > MAX_ATTRIBUTE_VALUE {
            return Err(format!(
                "attribute values must be at most {MAX_ATTRIBUTE_VALUE} characters"
            ));
        }
    }
    let span_id = match item.span_id {
        Some(id) => id,
        // A span without an id of its own cannot be resent: a fresh one is made.
        None => crate::ids::EventId::new().to_string().replace('-', "")[16..].to_owned(),
    };
    Ok(Span {
        app_id: stamp.app_id,
        trace_id: item.trace_id,
        span_id,
        parent_span_id: item.parent_span_id,
        name: item.name,
        start_time,
        end_time,
        attributes: item.attributes,
        key_id: stamp.key_id,
        agent_id: stamp.agent_id,
        received_at: stamp.received_at,
        expires_at: stamp.expires_at,
    })
}

/// An ISO 8601 date-time; one without an offset (Python's naive `datetime`) is taken as UTC.
fn parse_time(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text).or_else(|| Timestamp::parse_rfc3339(&format!("{text}Z")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            app_id: AppId::new(),
            key_id: KeyId::new(),
            agent_id: None,
            received_at: Timestamp::from_unix_seconds(0),
            expires_at: Timestamp::from_unix_seconds(1),
        }
    }

    fn item() -> SpanItem {
        SpanItem {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            name: "plan".into(),
            start_time: "2026-12-07T10:00:00Z".into(),
            span_id: Some("00f067aa0ba902b7".into()),
            parent_span_id: None,
            end_time: Some("2026-12-07T10:00:01.5+00:00".into()),
            attributes: BTreeMap::from([("step".into(), "1".into())]),
        }
    }

    #[test]
    fn a_well_formed_span_is_taken_and_naive_times_are_utc() {
        let checked = span_of(item(), &stamp()).unwrap();
        assert_eq!(checked.span_id, "00f067aa0ba902b7");
        let naive = span_of(
            SpanItem {
                start_time: "2026-12-07T10:00:00".into(),
                ..item()
            },
            &stamp(),
        )
        .unwrap();
        assert_eq!(naive.start_time, checked.start_time);
        let fresh = span_of(
            SpanItem {
                span_id: None,
                ..item()
            },
            &stamp(),
        )
        .unwrap();
        assert_eq!(fresh.span_id.len(), 16);
    }

    #[test]
    fn bad_spans_are_refused_with_the_field_named() {
        let cases: [(SpanItem, &str); 8] = [
            (
                SpanItem {
                    trace_id: String::new(),
                    ..item()
                },
                "trace_id",
            ),
            (
                SpanItem {
                    name: "x".repeat(256),
                    ..item()
                },
                "name",
            ),
            (
                SpanItem {
                    span_id: Some("y".repeat(33)),
                    ..item()
                },
                "span_id",
            ),
            (
                SpanItem {
                    start_time: "yesterday".into(),
                    ..item()
                },
                "start_time",
            ),
            (
                SpanItem {
                    end_time: Some("2026-12-07T09:00:00Z".into()),
                    ..item()
                },
                "end_time",
            ),
            (
                SpanItem {
                    name: "a\nb".into(),
                    ..item()
                },
                "control",
            ),
            (
                SpanItem {
                    attributes: (0..65).map(|i| (i.to_string(), String::new())).collect(),
                    ..item()
                },
                "attributes",
            ),
            (
                SpanItem {
                    attributes: (0..5).map(|i| (i.to_string(), "v".repeat(4000))).collect(),
                    ..item()
                },
                "bytes",
            ),
        ];
        for (bad, named) in cases {
            let why = span_of(bad, &stamp()).err().unwrap();
            assert!(why.contains(named), "{why}");
        }
    }
}
