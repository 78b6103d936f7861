-- Identity providers and app users, managed secrets, agents, grants and delegations.

-- Per-app counters. `grants` numbers an app's grants 1, 2, 3… in creation order; grants are
-- never deleted, so offset pagination over an app's grants is a range scan on that number.
CREATE TABLE app_counters (
    app_id  TEXT    PRIMARY KEY REFERENCES apps (id),
    grants  BIGINT  NOT NULL
);
INSERT INTO app_counters (app_id, grants) SELECT id, 0 FROM apps;

CREATE TABLE identity_providers (
    id              TEXT    PRIMARY KEY,
    app_id          TEXT    NOT NULL UNIQUE REFERENCES apps (id),
    issuer          TEXT    NOT NULL,
    audiences       TEXT    NOT NULL,
    jwks            TEXT    NOT NULL,
    algorithms      TEXT    NOT NULL,
    claims          TEXT    NOT NULL,
    leeway_seconds  BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE app_users (
    id            TEXT    PRIMARY KEY,
    app_id        TEXT    NOT NULL REFERENCES apps (id),
    idp_id        TEXT    NOT NULL REFERENCES identity_providers (id),
    subject       TEXT    NOT NULL,
    email         TEXT,
    display_name  TEXT,
    group_ids     TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    UNIQUE (app_id, idp_id, subject)
);

CREATE TABLE managed_secrets (
    id            TEXT    PRIMARY KEY,
    app_id        TEXT    NOT NULL REFERENCES apps (id),
    name          TEXT    NOT NULL,
    slug          TEXT    NOT NULL,
    secret_type   TEXT    NOT NULL,
    injection     TEXT    NOT NULL,
    allowed_hosts TEXT    NOT NULL,
    limits        TEXT    NOT NULL,
    sealed_value  BYTEA    NOT NULL,
    value_version BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    rotated_at    BIGINT,
    deleted_at    BIGINT,
    UNIQUE (app_id, slug)
);

CREATE TABLE agents (
    id                    TEXT    PRIMARY KEY,
    app_id                TEXT    NOT NULL REFERENCES apps (id),
    name                  TEXT    NOT NULL,
    display_name          TEXT,
    agent_type            TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    scopes                TEXT    NOT NULL,
    scopes_pending        TEXT,
    scopes_applies_at     BIGINT,
    policy                TEXT    NOT NULL,
    metadata              TEXT    NOT NULL,
    rate_limit_per_minute BIGINT,
    version               BIGINT  NOT NULL,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    revoked_at            BIGINT,
    last_used_at          BIGINT
);
-- Names are unique among the agents that are not deleted.
CREATE UNIQUE INDEX agents_live_name ON agents (app_id, name) WHERE status <> 'revoked';
CREATE INDEX agents_by_app ON agents (app_id, created_at);

CREATE TABLE agent_idempotency (
    app_id        TEXT    NOT NULL REFERENCES apps (id),
    idem_key      TEXT    NOT NULL,
    request_hash  BYTEA    NOT NULL,
    agent_id      TEXT    NOT NULL REFERENCES agents (id),
    key_id        TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (app_id, idem_key)
);

-- A grant binds a credential to a principal. Delegations are grants too: a child whose
-- principal is an agent, pointing at the grant it was delegated from.
CREATE TABLE grants (
    id                 TEXT    PRIMARY KEY,
    app_id             TEXT    NOT NULL REFERENCES apps (id),
    seq                BIGINT  NOT NULL,
    grant_kind         TEXT    NOT NULL,
    secret_id          TEXT    REFERENCES managed_secrets (id),
    principal_type     TEXT    NOT NULL,
    app_user_id        TEXT    REFERENCES app_users (id),
    idp_id             TEXT,
    external_group_id  TEXT,
    agent_id           TEXT    REFERENCES agents (id),
    label              TEXT,
    account_identifier TEXT,
    status             TEXT    NOT NULL,
    policy             TEXT    NOT NULL,
    expires_at         BIGINT,
    parent_grant_id    TEXT    REFERENCES grants (id),
    depth              BIGINT  NOT NULL,
    delegable          BIGINT  NOT NULL,
    delegated_by       TEXT    REFERENCES app_users (id),
    created_by         TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    revoked_at         BIGINT,
    revoke_reason      TEXT,
    last_used_at       BIGINT,
    UNIQUE (app_id, seq)
);
CREATE INDEX grants_by_secret ON grants (secret_id, status);
CREATE INDEX grants_by_agent ON grants (app_id, agent_id, seq);
CREATE INDEX grants_by_user ON grants (app_id, app_user_id, seq);
CREATE INDEX grants_by_parent ON grants (parent_grant_id);
CREATE INDEX grants_by_group ON grants (app_id, idp_id, external_group_id);
