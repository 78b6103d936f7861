-- Policy rules (issue 10). `policy_rules` holds the current version of each rule of an app
-- (a removed rule leaves it); `policy_rule_versions` keeps every version ever saved, with a
-- tombstone (`removed` = 1) for a removal, so an audit event or a what-if can name the exact
-- version that decided. Targets: `app` (target_id NULL), `provider`, `agent`, `grant`.
CREATE TABLE policy_rules (
    app_id       TEXT    NOT NULL REFERENCES apps (id),
    id           TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    target_type  TEXT    NOT NULL,
    target_id    TEXT,
    kind         TEXT    NOT NULL,
    effect       TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    description  TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (app_id, id)
);

CREATE TABLE policy_rule_versions (
    app_id       TEXT    NOT NULL REFERENCES apps (id),
    rule_id      TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    target_type  TEXT    NOT NULL,
    target_id    TEXT,
    kind         TEXT    NOT NULL,
    effect       TEXT    NOT NULL,
    mode         TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    description  TEXT,
    removed      BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (app_id, rule_id, version)
);

-- Bumped in the transaction of every rule write: a node caches an app's rules with the
-- version it read and reloads them when it moves.
ALTER TABLE apps ADD COLUMN rules_version BIGINT NOT NULL DEFAULT 0;

-- GCRA rate-limit buckets shared by every node: one theoretical arrival time (ms) per bucket;
-- an absent row, or one whose time has passed, is a full bucket.
CREATE TABLE rate_buckets (
    bucket_key  TEXT    PRIMARY KEY,
    tat_ms      BIGINT  NOT NULL
);
