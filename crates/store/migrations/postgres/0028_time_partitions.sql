-- Request nonces and audit events partitioned by time (docs/scale.md, "What changes then"),
-- so that expiry and audit retention drop whole partitions instead of deleting rows one by
-- one. The server creates partitions ahead (at start-up and in its prune job); a DEFAULT
-- partition takes whatever falls outside them, so an insert never fails for want of one.

-- Nonces: partitioned by the request's SIGNED timestamp (ten-minute partitions, named
-- request_nonces_p<first second>). A partitioned table's unique key must hold its partition
-- key, so the key becomes (key_id, nonce, signed_at). The signed timestamp is covered by the
-- signature: a replay carries the same one, lands in the same partition and conflicts. (A
-- partition key the server picks, such as its claim time, would let a replay a second later
-- through.) A nonce reused with another timestamp is another signed message, one only the
-- key's holder could make, not a replay.
--
-- The rows of before hold the claim time, not the signed timestamp, so they cannot be moved
-- under the new key: a replay of such a request (signed at T, claimed at S ≠ T) would not
-- conflict with a row (key, nonce, S). They stay in request_nonces_legacy with their old key
-- (key_id, nonce), and a trigger skips — so the claim reports a replay — every new claim
-- whose (key_id, nonce) is there. They are pruned on the old horizon (claim time + 2 ×
-- window + 60 s); once the table is empty the prune job drops it and the trigger.
ALTER TABLE request_nonces RENAME TO request_nonces_legacy;
ALTER INDEX request_nonces_pkey RENAME TO request_nonces_legacy_pkey;
ALTER INDEX request_nonces_by_time RENAME TO request_nonces_legacy_by_time;

CREATE TABLE request_nonces (
    key_id     TEXT    NOT NULL,
    nonce      TEXT    NOT NULL,
    signed_at  BIGINT  NOT NULL,
    PRIMARY KEY (key_id, nonce, signed_at)
) PARTITION BY RANGE (signed_at);
CREATE TABLE request_nonces_default PARTITION OF request_nonces DEFAULT;
-- Only the DEFAULT partition is pruned row by row.
CREATE INDEX request_nonces_default_by_time ON request_nonces_default (signed_at);

CREATE FUNCTION request_nonces_not_legacy() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM request_nonces_legacy
               WHERE key_id = NEW.key_id AND nonce = NEW.nonce) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER request_nonces_not_legacy
    BEFORE INSERT ON request_nonces
    FOR EACH ROW EXECUTE FUNCTION request_nonces_not_legacy();

-- Audit events: partitioned by month on `at` (named audit_events_pYYYYMM, UTC), so that
-- retention drops whole months. Keys must hold `at`: the primary key becomes
-- (app_id, seq, at) and the id's uniqueness (id, at). Neither loosens anything in practice:
-- `seq` is handed out under the app's locked chain head (audit_heads), and ids are fresh v7
-- UUIDs; nothing inserts with ON CONFLICT on either.
ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;

CREATE TABLE audit_events (
    app_id        TEXT    NOT NULL,
    seq           BIGINT  NOT NULL,
    id            TEXT    NOT NULL,
    at            BIGINT  NOT NULL,
    action        TEXT    NOT NULL,
    decision      TEXT    NOT NULL,
    actor_key_id  TEXT,
    agent_id      TEXT,
    grant_id      TEXT,
    app_user_id   TEXT,
    target_id     TEXT,
    body          TEXT    NOT NULL,
    prev_hash     BYTEA   NOT NULL,
    hash          BYTEA   NOT NULL,
    hash_version  BIGINT  NOT NULL DEFAULT 0,
    trace_id      TEXT
) PARTITION BY RANGE (at);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- One partition per month from the oldest event's to two months ahead.
DO $$
DECLARE
    m timestamp := date_trunc('month', to_timestamp(COALESCE(
        (SELECT MIN(at) FROM audit_events_unpartitioned),
        (EXTRACT(EPOCH FROM now()) * 1000000)::bigint) / 1000000.0) AT TIME ZONE 'UTC');
    last_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months';
BEGIN
    WHILE m <= last_month LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%s) TO (%s)',
            'audit_events_p' || to_char(m, 'YYYYMM'),
            (EXTRACT(EPOCH FROM m) * 1000000)::bigint,
            (EXTRACT(EPOCH FROM m + interval '1 month') * 1000000)::bigint);
        m := m + interval '1 month';
    END LOOP;
END;
$$;

INSERT INTO audit_events (app_id, seq, id, at, action, decision, actor_key_id, agent_id,
        grant_id, app_user_id, target_id, body, prev_hash, hash, hash_version, trace_id)
    SELECT app_id, seq, id, at, action, decision, actor_key_id, agent_id, grant_id,
        app_user_id, target_id, body, prev_hash, hash, hash_version, trace_id
    FROM audit_events_unpartitioned;
DROP TABLE audit_events_unpartitioned;

ALTER TABLE audit_events ADD PRIMARY KEY (app_id, seq, at);
CREATE UNIQUE INDEX audit_events_id ON audit_events (id, at);
CREATE INDEX audit_events_by_time ON audit_events (app_id, at);
CREATE INDEX audit_events_by_grant ON audit_events (app_id, grant_id, seq);
CREATE INDEX audit_events_by_agent ON audit_events (app_id, agent_id, seq);
CREATE INDEX audit_events_by_user ON audit_events (app_id, app_user_id, seq);
CREATE INDEX audit_events_by_action ON audit_events (app_id, action, seq);
CREATE INDEX audit_events_by_at ON audit_events (at);
CREATE INDEX audit_events_trace ON audit_events (app_id, trace_id) WHERE trace_id IS NOT NULL;

-- Retention anchors: per app, the last event retention removed (through_seq and its hash),
-- when, and a MAC under a key derived from the audit MAC root (purpose audit-anchor/v1), so
-- a database writer can neither forge one nor move one to hide removed or altered events.
-- Verification starts from it: the first kept event must follow through_hash.
CREATE TABLE audit_anchors (
    app_id        TEXT    PRIMARY KEY REFERENCES apps (id),
    through_seq   BIGINT  NOT NULL,
    through_hash  BYTEA   NOT NULL,
    at            BIGINT  NOT NULL,
    mac           BYTEA   NOT NULL
);

CREATE FUNCTION audit_anchors_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.through_seq < OLD.through_seq OR NEW.app_id <> OLD.app_id THEN
        RAISE EXCEPTION 'audit_anchors only moves forward';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_anchors_forward_only
    BEFORE UPDATE OR DELETE ON audit_anchors
    FOR EACH ROW EXECUTE FUNCTION audit_anchors_forward_only();
CREATE TRIGGER audit_anchors_no_truncate
    BEFORE TRUNCATE ON audit_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();

-- Still append-only, except that events at or before the app's anchor may be deleted (the
-- rows retention removes from the DEFAULT partition). Row triggers of a partitioned table
-- apply to every partition; TRUNCATE triggers do not, so each partition gets its own.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= COALESCE(
        (SELECT through_seq FROM audit_anchors WHERE app_id = OLD.app_id), 0) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();

DO $$
DECLARE
    part text;
BEGIN
    FOR part IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'audit_events'::regclass LOOP
        EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate()', part);
    END LOOP;
END;
$$;
