-- Outbound webhooks. The audit log is the outbox: each endpoint keeps the last audit sequence
-- number of its app it has scanned (events commit in sequence order per app, under the chain
-- head's lock), and one delivery row per event it selected, retried until delivered or given
-- up. The signing secret is sealed (envelope encryption, bound to the endpoint and its secret
-- version); during a rotation's grace period the previous one is kept sealed beside it.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    sealed_secret BLOB NOT NULL,
    secret_version BIGINT NOT NULL,
    previous_sealed_secret BLOB,
    previous_secret_version BIGINT,
    previous_secret_until BIGINT,
    cursor_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id);

CREATE TABLE webhook_deliveries (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_attempt_at BIGINT,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    PRIMARY KEY (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, seq);
