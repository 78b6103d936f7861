-- Operator accounts for the portal (Argon2id password hashes), the failed sign-in throttle
-- (per username as typed; shared by every node), and the operators' own append-only events
-- (sign-ins and account changes belong to no app's chain).

CREATE TABLE operators (
    id                   TEXT    PRIMARY KEY,
    username             TEXT    NOT NULL UNIQUE,
    password_hash        TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    password_changed_at  BIGINT  NOT NULL
);

CREATE TABLE operator_sign_in_throttle (
    throttle_key     TEXT    PRIMARY KEY,
    failures         BIGINT  NOT NULL,
    locked_until     BIGINT  NOT NULL,
    last_attempt_at  BIGINT  NOT NULL
);
CREATE INDEX operator_sign_in_throttle_by_age ON operator_sign_in_throttle (last_attempt_at);

CREATE TABLE operator_events (
    id        TEXT    PRIMARY KEY,
    at        BIGINT  NOT NULL,
    action    TEXT    NOT NULL,
    decision  TEXT    NOT NULL,
    operator  TEXT    NOT NULL,
    reason    TEXT,
    peer      TEXT
);
CREATE INDEX operator_events_by_time ON operator_events (at);

CREATE TRIGGER operator_events_no_update BEFORE UPDATE ON operator_events
BEGIN SELECT RAISE(ABORT, 'operator_events is append-only'); END;
CREATE TRIGGER operator_events_no_delete BEFORE DELETE ON operator_events
BEGIN SELECT RAISE(ABORT, 'operator_events is append-only'); END;

-- The dashboard counts every app's events of the last day by time.
CREATE INDEX audit_events_by_at ON audit_events (at);
