-- OAuth connections: one account's token pair at one provider, sealed together to the
-- connection and its token version. refresh_fence and refresh_lease_until are the refresh
-- lease: taking it bumps the fence, and a refresh's result is stored only under the fence it
-- was granted, so exactly one caller refreshes per expiry and a lost lease never overwrites.
CREATE TABLE oauth_connections (
    id                   TEXT    PRIMARY KEY,
    app_id               TEXT    NOT NULL REFERENCES apps (id),
    provider_id          TEXT    NOT NULL,
    account_identifier   TEXT,
    scopes               TEXT    NOT NULL,
    sealed_tokens        BYTEA   NOT NULL,
    token_version        BIGINT  NOT NULL,
    access_expires_at    BIGINT,
    status               TEXT    NOT NULL,
    refresh_fence        BIGINT  NOT NULL DEFAULT 0,
    refresh_lease_until  BIGINT,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL
);
CREATE INDEX oauth_connections_by_provider ON oauth_connections (app_id, provider_id);
