-- OAuth providers an app is configured for: endpoints and behaviour (JSON), the app's client id,
-- and its client secret sealed to the provider's revision (version@updated_at).
CREATE TABLE oauth_providers (
    app_id               TEXT    NOT NULL REFERENCES apps (id),
    provider_id          TEXT    NOT NULL,
    display_name         TEXT    NOT NULL,
    source               TEXT    NOT NULL,
    endpoints            TEXT    NOT NULL,
    client_id            TEXT    NOT NULL,
    sealed_client_secret BLOB   NOT NULL,
    scopes               TEXT    NOT NULL,
    version              BIGINT  NOT NULL,
    created_at           BIGINT  NOT NULL,
    updated_at           BIGINT  NOT NULL,
    PRIMARY KEY (app_id, provider_id)
);
