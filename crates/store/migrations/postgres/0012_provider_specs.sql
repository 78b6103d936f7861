-- Provider specs: the OpenAPI document an operator imported for an OAuth provider or a managed
-- secret of an app (kind + provider id), its content hash and a version that moves only when the
-- content changes; and the operations it lists, in document order, with their schemas (JSON).
CREATE TABLE provider_specs (
    app_id          TEXT    NOT NULL REFERENCES apps (id),
    provider_kind   TEXT    NOT NULL,
    provider_id     TEXT    NOT NULL,
    version         BIGINT  NOT NULL,
    provenance      TEXT    NOT NULL,
    source_url      TEXT,
    content_hash    TEXT    NOT NULL,
    title           TEXT,
    spec_version    TEXT,
    operation_count BIGINT  NOT NULL,
    document        BYTEA   NOT NULL,
    fetched_at      BIGINT  NOT NULL,
    changed_at      BIGINT  NOT NULL,
    PRIMARY KEY (app_id, provider_kind, provider_id)
);

-- search_text: the lower-cased id, path template and summary, searched with LIKE.
CREATE TABLE provider_spec_operations (
    app_id          TEXT    NOT NULL,
    provider_kind   TEXT    NOT NULL,
    provider_id     TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    operation_id    TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    path_template   TEXT    NOT NULL,
    summary         TEXT,
    search_text     TEXT    NOT NULL,
    params_schema   TEXT,
    request_schema  TEXT,
    response_schema TEXT,
    PRIMARY KEY (app_id, provider_kind, provider_id, operation_id),
    UNIQUE (app_id, provider_kind, provider_id, position),
    FOREIGN KEY (app_id, provider_kind, provider_id)
        REFERENCES provider_specs (app_id, provider_kind, provider_id) ON DELETE CASCADE
);
