-- Foundation: keyring, apps, API keys, request nonces, audit chain.
-- Ids are canonical UUID text; times are microseconds since the Unix epoch; flags are 0 or 1
-- (the portable Any driver cannot read SQLite booleans).

CREATE TABLE keks (
    version     BIGINT  PRIMARY KEY,
    wrapped     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE apps (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE api_keys (
    id                  TEXT     PRIMARY KEY,
    app_id              TEXT     NOT NULL REFERENCES apps (id),
    agent_id            TEXT,
    key_type            TEXT     NOT NULL,
    legacy_format       BIGINT   NOT NULL,
    name                TEXT     NOT NULL,
    prefix              TEXT     NOT NULL,
    lookup_hash         BYTEA    NOT NULL UNIQUE,
    sealed_signing_key  BYTEA    NOT NULL,
    scopes              TEXT     NOT NULL,
    scope_version       BIGINT   NOT NULL,
    cidr_allowlist      TEXT,
    rate_limit_rpm      BIGINT,
    expires_at          BIGINT,
    deprecated_at       BIGINT,
    grace_expires_at    BIGINT,
    revoked_at          BIGINT,
    parent_key_id       TEXT     REFERENCES api_keys (id),
    metadata            TEXT,
    created_at          BIGINT   NOT NULL,
    last_used_at        BIGINT
);
CREATE INDEX api_keys_by_app ON api_keys (app_id, created_at);
CREATE INDEX api_keys_by_parent ON api_keys (parent_key_id);
CREATE INDEX api_keys_by_agent ON api_keys (agent_id);

CREATE TABLE request_nonces (
    key_id   TEXT    NOT NULL,
    nonce    TEXT    NOT NULL,
    seen_at  BIGINT  NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX request_nonces_by_time ON request_nonces (seen_at);

-- One hash chain per app: the head holds the last sequence number and hash.
CREATE TABLE audit_heads (
    app_id  TEXT    PRIMARY KEY REFERENCES apps (id),
    seq     BIGINT  NOT NULL,
    hash    BYTEA   NOT NULL
);

CREATE TABLE audit_events (
    app_id        TEXT    NOT NULL,
    seq           BIGINT  NOT NULL,
    id            TEXT    NOT NULL UNIQUE,
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
    PRIMARY KEY (app_id, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (app_id, at);

-- The audit log is append-only: refuse updates and deletes at the database.
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
