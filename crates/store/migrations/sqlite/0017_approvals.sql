-- Held proxy calls waiting for a human (issue 10, item 4). One row is one approval and its one
-- gate (its id is the gate's, the id clients poll). The exact request and the caller's snapshot
-- are sealed to the row; the summary (method and redacted URL) is for listings. Transitions are
-- conditional updates on status, so two nodes deciding or executing the same row agree: the
-- claim approved -> executing succeeds once.
CREATE TABLE approvals (
    id                TEXT    PRIMARY KEY,
    group_id          TEXT    NOT NULL,
    app_id            TEXT    NOT NULL REFERENCES apps (id),
    status            TEXT    NOT NULL,
    grant_id          TEXT    NOT NULL,
    key_id            TEXT    NOT NULL,
    agent_id          TEXT,
    sealed_request    BLOB   NOT NULL,
    method            TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    holds             TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL,
    expires_at        BIGINT  NOT NULL,
    decided_at        BIGINT,
    decided_by        TEXT,
    decision_reason   TEXT,
    claimed_at        BIGINT,
    executed_at       BIGINT,
    execution_error   TEXT,
    sealed_result     BLOB,
    version           BIGINT  NOT NULL
);
CREATE INDEX approvals_by_app ON approvals (app_id, status, created_at);
CREATE INDEX approvals_by_status ON approvals (status, expires_at);
