-- End users' own keys for a managed secret (the key-entry path of a managed-secret Connect
-- session). The operator's secret is the template — injection, allowed hosts, limits — and the
-- value is the user's, sealed to this record and its version.
CREATE TABLE user_secrets (
    id             TEXT    PRIMARY KEY,
    app_id         TEXT    NOT NULL REFERENCES apps (id),
    secret_id      TEXT    NOT NULL REFERENCES managed_secrets (id),
    user_id        TEXT    NOT NULL REFERENCES app_users (id),
    sealed_value   BLOB   NOT NULL,
    value_version  BIGINT  NOT NULL,
    set_at         BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL
);
-- A grant on a user's own key names the template (secret_id) and the key.
ALTER TABLE grants ADD COLUMN user_secret_id TEXT REFERENCES user_secrets (id);

-- Connect sessions of managed secrets: the user proves who they are at the page (signing in at
-- the app's identity provider) before a key is accepted; verified_at records it.
ALTER TABLE connect_sessions ADD COLUMN verified_at BIGINT;
CREATE INDEX connect_sessions_by_browser ON connect_sessions (attempt_browser_hash);
