-- browser_sessions: a person signed in to a web UI (the Wallet or the portal). The cookie
-- carries a random token; only its SHA-256 is kept, so a leaked database names no live session.
-- kind: 'wallet' (app_id set, subject = the app user id) or 'portal' (subject = an operator id,
-- or 'admin'). A session ends at expires_at (absolute) or when signed out (revoked_at).
CREATE TABLE browser_sessions (
    token_hash  BYTEA   PRIMARY KEY,
    kind        TEXT    NOT NULL,
    app_id      TEXT    REFERENCES apps (id),
    subject     TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX browser_sessions_by_expiry ON browser_sessions (expires_at);
