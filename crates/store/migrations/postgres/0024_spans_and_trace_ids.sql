-- Caller-defined spans (`POST /sdk/spans`): telemetry labels, kept for a while and then pruned,
-- one row per (app, trace, span) so a resent batch is absorbed. And the trace an audit event
-- belongs to (the W3C `traceparent` its call carried), so a trace's records and spans are
-- shown together.
CREATE TABLE user_spans (
    app_id TEXT NOT NULL REFERENCES apps (id),
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    end_time BIGINT,
    attributes TEXT NOT NULL,
    key_id TEXT NOT NULL,
    agent_id TEXT,
    received_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app_id, trace_id, span_id)
);
CREATE INDEX user_spans_expiry ON user_spans (expires_at);

ALTER TABLE audit_events ADD COLUMN trace_id TEXT;
CREATE INDEX audit_events_trace ON audit_events (app_id, trace_id) WHERE trace_id IS NOT NULL;
