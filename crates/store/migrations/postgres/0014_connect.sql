-- OAuth grants (grant_kind 'oauth') point at the connection whose tokens they use.
ALTER TABLE grants ADD COLUMN connection_id TEXT REFERENCES oauth_connections (id);
CREATE INDEX grants_by_connection ON grants (connection_id, status);

-- When the connection's tokens were sealed: bound into the seal with their version.
ALTER TABLE oauth_connections ADD COLUMN tokens_at BIGINT NOT NULL DEFAULT 0;

-- Connect sessions: an app asks for a user's consent at providers. The client polls with the
-- session token and the user's browser opens the page token's URL; only their SHA-256 is kept.
-- The attempt columns hold the one authorization in flight: its state (hashed, cleared when
-- the callback claims it, so a state works once), the hash of the cookie of the browser that
-- started it (the callback must come from that browser), provider and sealed PKCE verifier.
CREATE TABLE connect_sessions (
    id                  TEXT    PRIMARY KEY,
    app_id              TEXT    NOT NULL REFERENCES apps (id),
    poll_hash           BYTEA   NOT NULL UNIQUE,
    page_hash           BYTEA   NOT NULL UNIQUE,
    settings            TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    declined            TEXT    NOT NULL,
    outcome             TEXT,
    attempt_state_hash  BYTEA   UNIQUE,
    attempt_browser_hash BYTEA,
    attempt_provider    TEXT,
    attempt_verifier    BYTEA,
    attempt_started_at  BIGINT,
    created_at          BIGINT  NOT NULL,
    expires_at          BIGINT  NOT NULL,
    finished_at         BIGINT
);

-- Upstream revocations (RFC 7009) of revoked connections: the local revocation never waits
-- for the provider; this row keeps the sealed tokens until the provider confirmed, retrying
-- with backoff, then destroys them.
CREATE TABLE oauth_revocations (
    connection_id    TEXT    PRIMARY KEY REFERENCES oauth_connections (id),
    app_id           TEXT    NOT NULL REFERENCES apps (id),
    provider_id      TEXT    NOT NULL,
    sealed_tokens    BYTEA   NOT NULL,
    token_version    BIGINT  NOT NULL,
    tokens_at        BIGINT  NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    done_at          BIGINT
);
CREATE INDEX oauth_revocations_due ON oauth_revocations (done_at, next_attempt_at);
